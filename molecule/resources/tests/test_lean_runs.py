"""The test suite's lighter playbook runs (callback_plugins/flaskstack_lean_runs.py),
through real ansible-playbook runs on this machine: module payloads built once
are shared by later runs that resolve collections from the same paths, and
only by those."""
import os
import pathlib
import subprocess
import sys

import pytest

PLUGINS = pathlib.Path(__file__).resolve().parents[1] / "callback_plugins"
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "ping.yml"
    path.write_text(PLAYBOOK)
    return path


def run(playbook, tmp_path, **environment):
    env = {**os.environ, "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
           **environment}
    env.pop("FLASKSTACK_RUN_LOG", None)
    result = subprocess.run(["ansible-playbook", "-i", "localhost,",
                             "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def payloads(cache):
    """Each shared folder (one per collection search path) and the module payloads in it."""
    return {folder.name: sorted(entry.name for entry in folder.iterdir() if not entry.name.endswith(".lock"))
            for folder in cache.iterdir()} if cache.exists() else {}


def test_module_payloads_are_shared_by_runs_with_the_same_collection_paths_only(playbook, tmp_path):
    cache, ping = tmp_path / "ansiballz", ["ansible.modules.ping-ZIP_DEFLATED-none"]
    for collections in "ab":
        (tmp_path / collections / "ansible_collections").mkdir(parents=True)

    def run_with_collections_in(collections):
        run(playbook, tmp_path, FLASKSTACK_ANSIBALLZ_CACHE=str(cache),
            ANSIBLE_COLLECTIONS_PATH=str(tmp_path / collections))

    run_with_collections_in("a")
    first = payloads(cache)
    assert list(first.values()) == [ping], first
    # Built once: the next run with the same paths reads it, the file unchanged.
    payload = cache / next(iter(first)) / ping[0]
    built = payload.stat().st_mtime_ns
    run_with_collections_in("a")
    assert payloads(cache) == first and payload.stat().st_mtime_ns == built
    # Another collection search path (an installed copy of a collection): a folder of its own.
    run_with_collections_in("b")
    assert list(payloads(cache).values()) == [ping, ping], payloads(cache)
    # Each run removed its own temporary folder, with the link in it, and left the shared one.
    assert list((tmp_path / "local").iterdir()) == []
