"""A checkout resolves flaskstack.stack.* by itself (ansible.cfg's
collections_path and the committed link collections/ansible_collections/
flaskstack/stack), with no install step; and the artifact `ansible-galaxy
collection build` makes works installed on its own, away from the checkout.
Both run ansible-playbook on this controller only (connection local, check mode)."""
import json
import os
import pathlib
import re
import subprocess
import sys

PROJECT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def ansible(tool, *args, cwd, env=None):
    environment = {**os.environ, "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true", **(env or {})}
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          check=False)


def test_the_link_points_back_at_the_checkout():
    link = PROJECT / "collections" / "ansible_collections" / "flaskstack" / "stack"
    assert link.is_symlink() and os.readlink(link) == "../../.."
    assert link.resolve() == PROJECT.resolve()


def test_every_plugin_resolves_by_fqcn_in_the_checkout(tmp_path):
    output = tmp_path / "fqcn.json"
    result = ansible("ansible-playbook", "-i", "localhost,", str(PROJECT / "tests" / "checkout" / "fqcn.yml"),
                     "--check", "-e", f"fqcn_output={output}", "-e", f"ansible_python_interpreter={sys.executable}",
                     cwd=PROJECT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    found = json.loads(output.read_text())
    # This controller's platform, named as the roles name it; the one list they accept.
    assert re.fullmatch(r"[A-Za-z]+-([0-9]+|unstable)", found["platform"]), found["platform"]
    assert "Debian-12" in found["supported_platforms"]
    assert found["address"] == "10.0.0.1"
    assert found["peers"] == [{"name": "db1", "address": "10.0.0.1", "local": False, "port": 3306}]
    assert found["listen_address"] == "10.0.0.1"
    assert found["unresolved_peers"] == ["db1", "app1", "app2"]
    assert found["app_proxy_addresses"] == ["10.0.0.2"]
    assert found["crosses_hosts"] is True
    assert found["tiers"] == ["flaskapp"]
    # The haproxy and mysql roles' defaults, read by the filter beside them.
    assert found["budget"] == [
        "db1: servers' maxconn 10 (lb1) + old workers' 10 after a reload + health checks 1 + administration 5 = 26, "
        "fits max_connections 151"]
    assert found["caching_sha2_hash"] == "$A$005$F1askstackSaltVectorri4.7hruKlJs/qpIO8nQY9FIefQDP0lmoLPNRiOH4aD"
    assert found["subject_alt_names"] == ["IP:10.0.0.2", "DNS:db1"]
    assert found["pins"] == ["flask==3.0.3"]
    assert found["mysql_servers"] == [{"name": "mysql1", "host": "db1", "address": "10.0.0.1", "port": 3306}]
    assert found["app_servers"] == [{"name": "app1-8000", "address": "10.0.0.3", "port": 8000}]
    assert found["server_line"] == "mysql1 10.0.0.1:3306 maxconn 10 check port 9200 inter 2s"
    assert found["listener_fits"] is True
    assert found["ip_addresses"] == ["10.0.0.1", "fd00::1"]
    assert found["ip_networks"] == ["10.0.0.0/8", "fd00::/8"]
    # Beside the checkout's ansible.cfg: where .secrets always was.
    assert found["secrets_dir"] == str(PROJECT / ".secrets")
    assert found["owed"] is False


def test_the_installed_artifact_works_away_from_the_checkout(tmp_path):
    """install-collection.sh into an empty path; from a directory with no
    ansible.cfg, with ANSIBLE_COLLECTIONS_PATH at that path only (the ansible
    package's collections come from Python's path), the converge playbook that
    imports flaskstack.stack.site passes a syntax check and ansible-doc shows
    the module, from the installed copy."""
    installed = tmp_path / "collections"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(["bash", str(PROJECT / "molecule" / "resources" / "install-collection.sh"), str(installed)],
                            env={**os.environ, "BIN": str(BIN)}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(installed.resolve())
    copy = installed / "ansible_collections" / "flaskstack" / "stack"
    assert (copy / "MANIFEST.json").is_file() and not (copy / "molecule").exists() and not (copy / "collections").exists()
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_CONFIG": ""}
    inventory = elsewhere / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {tier: {"hosts": {"stack1": None}}
                                                          for tier in ("mysql", "haproxy", "flaskapp")}}}))
    converge = PROJECT / "molecule" / "resources" / "converge-installed.yml"
    syntax = ansible("ansible-playbook", "-i", str(inventory), "--syntax-check", str(converge), cwd=elsewhere, env=env)
    assert syntax.returncode == 0, syntax.stdout[-3000:] + syntax.stderr[-2000:]
    doc = ansible("ansible-doc", "--json", "flaskstack.stack.restart_owed", cwd=elsewhere, env=env)
    assert doc.returncode == 0, doc.stderr
    module = json.loads(doc.stdout)["flaskstack.stack.restart_owed"]
    assert module["doc"]["filename"].startswith(str(copy))
    roles = ansible("ansible-doc", "--json", "-t", "role", "flaskstack.stack.shared", cwd=elsewhere, env=env)
    assert roles.returncode == 0, roles.stderr
    assert str(copy) in roles.stdout
