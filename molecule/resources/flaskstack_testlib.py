"""Helpers for talking to the stack on a test host, shared by the Molecule
scenarios: HTTP with curl, SQL as root or as the app's account through HAProxy,
HAProxy's admin socket, systemd, and the playbook itself. Each takes the
testinfra host, so module-scoped fixtures can use them too."""
import json
import os
import pathlib
import re
import subprocess
import time

PROJECT = pathlib.Path(__file__).resolve().parents[2]
APP_ENV_FILE = "/etc/flaskapp/flaskapp.env"
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
STATS_SOCKET = "/run/haproxy/admin.sock"
APP_PORTS = (8000, 8001)


class Response:
    def __init__(self, status, body, seconds):
        self.status, self.body, self.seconds = status, body, seconds

    def json(self):
        return json.loads(self.body)


def http_get(host, path, port=8000, method="GET", address="127.0.0.1"):
    """One request to a gunicorn instance (or any HTTP server), made on the host with curl."""
    out = host.check_output(
        "curl -sS -X %s -w '\\n%%{http_code} %%{time_total}' http://%s:%s%s",
        method, address, str(port), path)
    body, _, tail = out.rpartition("\n")
    status, seconds = tail.split()
    return Response(int(status), body, float(seconds))


def root_sql_run(host, query):
    """SQL as MySQL's root over the unix socket, as an operator would."""
    return host.check_output("mysql --batch --skip-column-names -e %s", query)


def app_sql_run(host, query, port=5555):
    """SQL as the app's account through HAProxy. The password is read on the host
    from the app's root-only environment file and handed to the client in its
    environment, never on a command line."""
    return host.run(
        "set -a; . %s; MYSQL_PWD=\"$FLASKAPP_DB_PASSWORD\" "
        "mysql --batch --skip-column-names -h 127.0.0.1 -P %s -u \"$FLASKAPP_DB_USER\" -e %s",
        APP_ENV_FILE, str(port), query)


# The deployed app's engine, imported with the deployed environment file, hands
# out one connection: does its PyMySQL connection negotiate TLS when offered?
APP_CONNECTION_TLS = (
    "set -a; . {env}; cd /opt/flaskapp/app; /opt/flaskapp/venv/bin/python -c "
    "'import app, pymysql; c = app.engine.raw_connection(); "
    "print(pymysql.VERSION_STRING, c.driver_connection.ssl); c.close()'").format(env=APP_ENV_FILE)


def app_connection_tls(host):
    """(PyMySQL version as a tuple, whether the app's connections try TLS)."""
    version, tls = host.check_output(APP_CONNECTION_TLS).split()
    return tuple(int(part) for part in version.split(".")[:2]), tls == "True"


def haproxy_command(host, command):
    """Send one command to HAProxy's admin socket and return its answer."""
    return host.check_output(
        "python3 -c %s %s %s",
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "s.sendall(sys.argv[2].encode()+b'\\n'); "
        "sys.stdout.write(b''.join(iter(lambda: s.recv(65536), b'')).decode())",
        STATS_SOCKET, command)


def haproxy_stats(host):
    """`show stat`, as {(proxy, server): {column: value}}."""
    lines = haproxy_command(host, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = (dict(zip(header, line.split(","))) for line in lines[1:] if line)
    return {(row["pxname"], row["svname"]): row for row in rows}


def wait_for(predicate, timeout, interval=0.5):
    """Seconds until predicate() held, or None if it did not within timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def main_pid_of(host, unit):
    return int(host.check_output("systemctl show -p MainPID --value %s", unit))


def mysql_unit(host):
    return "mysql" if host.system_info.distribution == "ubuntu" else "mariadb"


def run_playbook(*args, inventory=None, extra_inventories=()):
    """Run playbooks/site.yml, by default against the scenario's inventory as
    molecule does, plus any extra inventory sources."""
    inventory = inventory or os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    sources = [option for source in (inventory, *extra_inventories) for option in ("-i", str(source))]
    # Plain text, whatever the caller's settings (molecule forces colour on).
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true"}
    return subprocess.run(
        ["ansible-playbook", *sources, str(PROJECT / "playbooks" / "site.yml"), *args],
        capture_output=True, text=True, check=False, env=env)


def rerun_on(host, *args, **extra_vars):
    """Rerun the playbook on this test host only, with extra variables:
    rerun_on(host, "--tags", "haproxy", haproxy_server_maxconn=3). Plain words go
    as key=value, as operators type them; anything else as JSON."""
    extra = []
    for key, value in extra_vars.items():
        plain = isinstance(value, str) and value and not re.search(r"\s", value)
        extra += ["-e", f"{key}={value}" if plain else json.dumps({key: value})]
    return run_playbook("--limit", host.backend.get_hostname(), *args, *extra)


def recap(output, hostname):
    """The PLAY RECAP counters of one host, e.g. {'ok': 40, 'changed': 0, ...}."""
    match = re.search(rf"^{re.escape(hostname)}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP line for {hostname}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def changed_tasks(output):
    """Names of the tasks and handlers that reported a change, in order."""
    changed, current = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
        if match:
            current = match.group(1)
        elif line.startswith("changed:") and current not in changed:
            changed.append(current)
    return changed


def failure_message(result):
    """What Ansible said of the failed task: from its first `fatal:`/`failed:` line
    on. Molecule sends failures to stderr, a plain run to stdout: read both."""
    for stream in (result.stdout, result.stderr):
        match = re.search(r"^(fatal|failed): \[.*", stream, re.MULTILINE | re.DOTALL)
        if match:
            return match.group(0)
    return ""


def failure_text(result):
    return f"rc={result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
