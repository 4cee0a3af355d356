"""Talking to the stack on a test host, shared by both Molecule scenarios: HTTP
with curl, SQL as root or as the app's account through HAProxy, HAProxy's admin
socket, systemd, listening sockets, and the playbook itself (rerun, and rerun
then restore). Expected values come from the project's own files (the site's
shared values and the roles' defaults), not from literals."""
import contextlib
import datetime
import fcntl
import functools
import json
import os
import pathlib
import re
import resource
import signal
import subprocess
import time

import pytest
import testinfra
import yaml

from haproxy_stat import parse_show_stat

PROJECT = pathlib.Path(__file__).resolve().parents[2]
RESOURCES = pathlib.Path(__file__).resolve().parent


def _load_yaml(relative_path):
    return yaml.safe_load((PROJECT / relative_path).read_text())


SHARED = _load_yaml("roles/shared/defaults/main.yml")
DEFAULTS = {role: _load_yaml(f"roles/{role}/defaults/main.yml") for role in ("mysql", "haproxy", "flaskapp")}

DB_NAME = SHARED["flaskstack_db_name"]
DB_USER = SHARED["flaskstack_db_user"]
MYSQL_PORT = SHARED["flaskstack_mysql_port"]
PROXY_PORT = SHARED["flaskstack_proxy_port"]
CHECK_PORT = SHARED["flaskstack_mysql_check_port"]
APP_PORTS = tuple(SHARED["flaskstack_app_ports"])
LISTEN_NAME = DEFAULTS["haproxy"]["haproxy_listen_name"]
SERVER_MAXCONN = DEFAULTS["haproxy"]["haproxy_server_maxconn"]
STATS_SOCKET = DEFAULTS["haproxy"]["haproxy_stats_socket"]
POOL_SIZE = DEFAULTS["flaskapp"]["flaskapp_db_pool_size"]
SEEDED_TODOS = {str(row["id"]): {"item": row["item"], "status": row["status"]}
                for row in DEFAULTS["mysql"]["mysql_seed_todos"]}
APP_ENV_FILE = "/etc/flaskapp/flaskapp.env"
# By its full path: Debian unstable's sudo leaves /usr/local/sbin out of its secure_path.
STATUS_COMMAND = "/usr/local/sbin/flaskstack-status"
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
# What a rerun that changes only HAProxy's settings reports as changed on a proxy host...
HAPROXY_ONLY = ["haproxy : Write haproxy.cfg", "haproxy : Reload HAProxy"]
# ...and on a host that runs the app behind it too: the app moves its connections to the new worker.
APP_RECONNECT = "flaskapp : Have the app reconnect through the proxy's current config"
HAPROXY_AND_APP_RECONNECT = [*HAPROXY_ONLY, APP_RECONNECT]


class Response:
    def __init__(self, status, body, seconds):
        self.status, self.body, self.seconds = status, body, seconds

    def json(self):
        return json.loads(self.body)


# --- What the tests saw ----------------------------------------------------------------

@pytest.fixture
def observe(request):
    """observe(message): record a figure the test measured. They are printed
    together at the end of the run, from every pytest-xdist worker (a worker's
    own prints are not shown)."""
    return lambda message: request.node.user_properties.append(("observed", message))


def pytest_terminal_summary(terminalreporter):
    seen = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, message in getattr(report, "user_properties", ()):
                if name == "observed" and message not in seen:
                    seen.append(message)
    if seen:
        terminalreporter.section("what the tests measured")
        for message in seen:
            terminalreporter.write_line(message)


# --- Which host a test drives ------------------------------------------------------------

def _scenario_hosts(config):
    """Every host of the scenario's inventory, in testinfra's order."""
    hosts = testinfra.get_hosts([None], connection="ansible", sudo=config.option.sudo,
                                ansible_inventory=config.option.ansible_inventory)
    return sorted(hosts, key=lambda host: host.backend.get_pytest_id())


@pytest.fixture(scope="module")
def host(request, _testinfra_host):
    """testinfra's host; with --spread-over-hosts (the scenario's conftest), the
    one this pytest-xdist worker drives (gw0 the first, gw1 the second...)."""
    if not request.config.getoption("spread_over_hosts"):
        return _testinfra_host
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    hosts = _scenario_hosts(request.config)
    return hosts[worker % len(hosts)]


# --- One machine, shared by parallel test workers ------------------------------------

_LOCK_FILE = PROJECT / ".cache" / "test-machine.lock"
# Taken on the way in: a measured window waiting for the lock holds it, so
# playbook runs that arrive later wait behind it instead of starving it.
_TURNSTILE_FILE = PROJECT / ".cache" / "test-machine.turnstile"
_held = []


@contextlib.contextmanager
def machine_lock(exclusive):
    """A lock across every test process on this machine: timing-sensitive windows
    take it exclusively, playbook runs (the heavy work) shared, so a measured
    window never overlaps another worker's playbook run or measured window.
    Windows go first: once one waits, new playbook runs queue behind it (letting
    them pass while it waits, measured, crowds the critical path's runs with the
    other scenarios'). Yields the seconds it waited."""
    if _held:  # this process holds it already (a rerun inside a measured window)
        yield 0.0
        return
    asked = time.monotonic()
    _LOCK_FILE.parent.mkdir(exist_ok=True)
    with open(_TURNSTILE_FILE, "a") as turnstile, open(_LOCK_FILE, "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if exclusive:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        _held.append(lock)
        granted = time.monotonic()
        try:
            yield granted - asked
        finally:
            _held.pop()
            fcntl.flock(lock, fcntl.LOCK_UN)
            if exclusive:
                _record_window(time.monotonic() - granted, granted - asked)


def _record_window(seconds, lock_wait):
    """The cost table's line for a measured window: while it is held, no other
    scenario's playbook run starts."""
    _append_record({"kind": "window", "scenario": os.environ.get("MOLECULE_SCENARIO_NAME", ""),
                    "test": os.environ.get("PYTEST_CURRENT_TEST", ""), "seconds": round(seconds, 1),
                    "lock_wait": round(lock_wait, 1), "ended_at": round(time.time(), 1)})


def timing_window():
    return machine_lock(exclusive=True)


# --- What each test cost ------------------------------------------------------------------

def _append_record(record):
    log = os.environ.get("FLASKSTACK_RUN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def _test_hosts(item):
    """The hosts a test drives: the `host` fixture's (this worker's host, or the
    test's parameter), else every host of the scenario (the multi-host scenario)."""
    names = _scenario_host_names(item.config)
    if item.config.getoption("spread_over_hosts", default=False):
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
        return (names[worker % len(names)],)
    host = getattr(getattr(item, "callspec", None), "params", {}).get("_testinfra_host")
    return (host.backend.get_hostname(),) if host is not None else names


@functools.lru_cache(maxsize=None)
def _scenario_host_names(config):
    return tuple(host.backend.get_hostname() for host in _scenario_hosts(config))


@functools.lru_cache(maxsize=None)
def _container_cpu_files(names):
    """The cgroup v1 CPU counters of these containers (named after their hosts)."""
    found = subprocess.run(["docker", "inspect", "--type", "container", "-f", "{{.Id}}", *names],
                           capture_output=True, text=True, check=False).stdout.split()
    files = [pathlib.Path("/sys/fs/cgroup/cpuacct/docker", cid, "cpuacct.usage") for cid in found]
    return tuple(path for path in files if path.exists())


def _cpu_now(item):
    """(this pytest process's CPU and its reaped children's: the playbook runs,
    the docker and ssh clients; the CPU of the containers the test drives), in
    seconds; the containers' 0 where they cannot be read: a figure, never a
    test's failure."""
    own = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    containers = 0.0
    try:
        files = _container_cpu_files(_test_hosts(item))
    except Exception:  # noqa: BLE001 (whatever keeps the figure from being read)
        files = ()
    for path in files:
        with contextlib.suppress(OSError, ValueError):  # a container down at that moment
            containers += int(path.read_text()) / 1e9
    return own, containers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The cost table's line for a test (its module fixtures' setup included):
    its wall time, the controller's CPU for it and the CPU of the containers it
    drives. Where two workers share the containers (the multi-host scenario),
    a test's figure also holds what the other worker did meanwhile."""
    # Once per test, though a scenario that loads two conftests registers this twice.
    if not os.environ.get("FLASKSTACK_RUN_LOG") or getattr(item, "_flaskstack_cost", False):
        yield
        return
    item._flaskstack_cost = True
    started, (controller, containers) = time.monotonic(), _cpu_now(item)
    yield
    controller_after, containers_after = _cpu_now(item)
    # A container restarted meanwhile (a reboot, a kill) starts its counter again: no figure then.
    containers_cpu = containers_after - containers
    _append_record({"kind": "test", "scenario": os.environ.get("MOLECULE_SCENARIO_NAME", ""), "test": item.nodeid,
                    "seconds": round(time.monotonic() - started, 1), "cpu": round(controller_after - controller, 1),
                    "container_cpu": round(containers_cpu, 1) if containers_cpu >= 0 else None,
                    "ended_at": round(time.time(), 1)})


# --- The playbook -------------------------------------------------------------------------

def run_playbook(*args, inventory=None, extra_inventories=(), playbook="site.yml", env=None):
    """Run playbooks/site.yml (or another playbook of playbooks/, or one by its
    path in the project, e.g. lab/playbook.yml, or an absolute path), by default
    against the scenario's inventory as molecule does, plus any extra inventory
    sources; `env` adds to Ansible's environment."""
    inventory = inventory or os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    sources = [option for source in (inventory, *extra_inventories) for option in ("-i", str(source))]
    path = PROJECT / playbook if "/" in playbook else PROJECT / "playbooks" / playbook
    with machine_lock(exclusive=False) as waited:
        result = subprocess.run(
            ["ansible-playbook", *sources, str(path), *args],
            capture_output=True, text=True, check=False, env={**_playbook_env(waited), **(env or {})})
    result.stdout = short_role_names(result.stdout)
    return result


# The playbooks name the roles by FQCN (flaskstack.stack.mysql), so Ansible shows
# their tasks as "flaskstack.stack.mysql : ..."; the tests name them as
# "mysql : ...", the role's own name.
_ROLE_FQCN = re.compile(r"^((?:TASK|RUNNING HANDLER) \[)flaskstack\.stack\.", re.MULTILINE)


def short_role_names(output):
    """Task and handler headers with the roles' short names: "TASK [mysql : ...]"."""
    return _ROLE_FQCN.sub(r"\1", output)


def _playbook_env(lock_wait):
    # Plain text, whatever the caller's settings (molecule forces colour on); the
    # lock's wait for the run's line in the cost table (callback_plugins/).
    return {**os.environ, "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true",
            "FLASKSTACK_LOCK_WAIT": f"{lock_wait:.1f}"}


def _record_cut_off_run(args, seconds, lock_wait):
    """The cost table's line for a run killed before Ansible could write it."""
    log = os.environ.get("FLASKSTACK_RUN_LOG")
    if log:
        subset = args[args.index("--limit") + 1] if "--limit" in args else ""
        tags = args[args.index("--tags") + 1] if "--tags" in args else ""
        record = {"scenario": os.environ.get("MOLECULE_SCENARIO_NAME", ""),
                  "test": os.environ.get("PYTEST_CURRENT_TEST", ""), "playbook": "site.yml (cut off)",
                  "hosts": subset, "tags": tags, "check": False, "seconds": round(seconds, 1),
                  "lock_wait": round(lock_wait, 1), "failed": False,
                  "ended_at": round(time.time(), 1)}
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def interrupted_playbook(*args, after_change_of):
    """Run playbooks/site.yml against the scenario's inventory and cut it off
    with SIGKILL (as a dropped SSH session or a killed terminal would) the
    moment the task `after_change_of` reports a change: the run never reaches
    its handlers. Returns (output so far, whether the task changed)."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    lines, current, cut = [], None, False
    with machine_lock(exclusive=False) as waited:
        started = time.monotonic()
        process = subprocess.Popen(
            ["ansible-playbook", "-i", inventory, str(PROJECT / "playbooks" / "site.yml"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_playbook_env(waited),
            start_new_session=True)
        for line in map(short_role_names, process.stdout):
            lines.append(line)
            match = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
            if match:
                current = match.group(1)
            elif line.startswith("changed:") and current == after_change_of:
                os.killpg(process.pid, signal.SIGKILL)
                cut = True
                break
        process.stdout.close()
        process.wait()
        if cut:
            _record_cut_off_run(args, time.monotonic() - started, waited)
    return "".join(lines), cut


def connection_vars(name):
    """How the scenario's inventory reaches a host (its ansible_* variables),
    for extra inventories that name the same host under another alias."""
    inventory = yaml.safe_load(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    found = {}
    for group in inventory.values():
        host_vars = ((group or {}).get("hosts") or {}).get(name) or {}
        found.update({key: value for key, value in host_vars.items() if key.startswith("ansible_")})
    assert found, f"{name} is not in {os.environ['MOLECULE_INVENTORY_FILE']}"
    return found


def extra_vars_args(extra_vars):
    """-e options as operators type them: plain words as key=value, anything else as JSON."""
    args = []
    for key, value in extra_vars.items():
        plain = isinstance(value, str) and value and not re.search(r"\s", value)
        args += ["-e", f"{key}={value}" if plain else json.dumps({key: value})]
    return args


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


def skipped_tasks(output):
    """Names of the tasks every host skipped, in order."""
    outcomes, current = {}, None
    for line in output.splitlines():
        match = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
        if match:
            current = match.group(1)
        elif current and re.match(r"^(ok|changed|skipping|fatal|failed):", line):
            outcomes.setdefault(current, set()).add(line.split(":", 1)[0])
    return [name for name, seen in outcomes.items() if seen == {"skipping"}]


def changed_items(output, name):
    """The loop items the task or handler `name` ("role : task") reported
    changed, in order: "changed: [host] => (item=8000)" gives "8000"."""
    items, current = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\]", line)
        if match:
            current = match.group(1)
        elif current == name:
            item = re.match(r"^changed: \[[^]]+\] => \(item=(.*)\)", line)
            if item:
                items.append(item.group(1))
    return items


def failure_message(result, hostname=None):
    """What Ansible said of the failed task: from the first `fatal:`/`failed:`
    line on, or that host's line alone. Molecule sends failures to stderr, a
    plain run to stdout: read both."""
    if hostname:
        pattern, flags = rf"^(fatal|failed): \[{re.escape(hostname)}\].*$", re.MULTILINE
    else:
        pattern, flags = r"^(fatal|failed): \[.*", re.MULTILINE | re.DOTALL
    for stream in (result.stdout, result.stderr):
        match = re.search(pattern, stream, flags)
        if match:
            return match.group(0)
    return ""


def failure_text(result):
    return f"rc={result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"


# The line profile_tasks prints under each task's header.
PROFILE_LINE = re.compile(r"^\w+ (\d+ \w+ \d{4}) +(\d\d:\d\d:\d\d [+-]\d{4}) \(.*\) +(\d+):(\d\d):(\d\d\.\d+) \*+\s*$")


def task_start_times(output):
    """{task header: Unix time it started}, from the lines profile_tasks prints
    under each header: a wall clock to the second, and the seconds since the
    run began to the millisecond. The run's start is the latest of (wall -
    elapsed) over every line, which pins it well within a second."""
    starts, elapsed_of = [], {}
    lines = output.splitlines()
    for header, line in zip(lines, lines[1:]):
        match = PROFILE_LINE.match(line)
        if not match:
            continue
        day, clock, hours, minutes, seconds = match.groups()
        wall = datetime.datetime.strptime(f"{day} {clock}", "%d %B %Y %H:%M:%S %z").timestamp()
        elapsed = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        starts.append(wall - elapsed)
        if header.startswith(("TASK [", "RUNNING HANDLER [")):
            elapsed_of.setdefault(header.split("]")[0] + "]", elapsed)
    assert starts, "no profile_tasks lines in the run's output"
    run_started = max(starts)
    return {header: run_started + elapsed for header, elapsed in elapsed_of.items()}


def vault_args(directory, **variables):
    """Ansible's arguments for `variables` in an ansible-vault encrypted file,
    written to `directory` with its vault password file beside it."""
    directory = pathlib.Path(directory)
    vault_pass, vars_file = directory / "vault-pass", directory / "vault.yml"
    vault_pass.write_text(os.urandom(16).hex())
    vars_file.write_text(yaml.safe_dump(variables))
    subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(vault_pass), str(vars_file)],
                   capture_output=True, check=True)
    assert not any(str(value) in vars_file.read_text() for value in variables.values())
    return ["-e", f"@{vars_file}", "--vault-password-file", str(vault_pass)]


def deployed_password(stack):
    """The app's database password as its root-only environment file holds it."""
    return stack.host.check_output("set -a; . %s; printf %%s \"$FLASKAPP_DB_PASSWORD\"", APP_ENV_FILE)


def assert_succeeded(result):
    assert result.returncode == 0, failure_text(result)
    return result


class Reconfiguration:
    """The playbook rerun with changed values (`result`), and the rerun that put
    the inventory's values back (`restored`)."""
    result = restored = None


# --- Scripts run on a host ---------------------------------------------------------------

# Makes haproxy_stat.py importable by a script passed on the command line.
_BOOTSTRAP = ("import sys, types; module = types.ModuleType('haproxy_stat'); "
              "exec(sys.argv.pop(1), module.__dict__); sys.modules['haproxy_stat'] = module; "
              "source = sys.argv.pop(1); exec(compile(source, sys.argv[0], 'exec'), {'__name__': '__main__'})")


def run_script(host, script, *args):
    """Run one of the tests' scripts on the host's own Python, with
    haproxy_stat.py importable, and return its JSON output."""
    sources = [(RESOURCES / "haproxy_stat.py").read_text(), pathlib.Path(script).read_text()]
    placeholders = " ".join(["%s"] * (2 + len(args)))
    return json.loads(host.check_output(f"python3 -c %s {placeholders}", _BOOTSTRAP, *sources, *map(str, args)))


# --- One host's part of the stack ----------------------------------------------------------

class Stack:
    """A test host (testinfra) and what runs on it, reached as an operator would."""

    def __init__(self, host, name=None):
        self.host = host
        self.name = name or host.backend.get_hostname()

    def http(self, path, port=APP_PORTS[0], method="GET", address="127.0.0.1"):
        """One request to a gunicorn instance (or any HTTP server), made on the host with curl."""
        out = self.host.check_output(
            "curl -sS -X %s -w '\\n%%{http_code} %%{time_total}' http://%s:%s%s", method, address, str(port), path)
        body, _, tail = out.rpartition("\n")
        status, seconds = tail.split()
        return Response(int(status), body, float(seconds))

    def http_status(self, path="/todos", port=APP_PORTS[0]):
        """HTTP status of a request, 0 while nothing answers on the port (for polling)."""
        result = self.host.run("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%s%s", str(port), path)
        return int(result.stdout or 0)

    def root_sql(self, query):
        """SQL as MySQL's root over the unix socket, as an operator would."""
        return self.host.check_output("mysql --batch --skip-column-names -e %s", query)

    @contextlib.contextmanager
    def table_locked(self, table):
        """Root holds a write lock on a table from a session of its own (a
        client left running on the host); queries of the table wait. Yields a
        function that lets go (ending that session); leaving lets go too."""
        marker = f"flaskstack-table-lock-{os.getpid()}"
        self.host.check_output(
            "nohup mysql -e %s >/dev/null 2>&1 &",
            f"LOCK TABLES {table} WRITE; SELECT SLEEP(600) AS `{marker}`")
        find_holder = ("SELECT ID FROM information_schema.PROCESSLIST "
                       f"WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()")
        assert wait_for(lambda: self.root_sql(find_holder), 10, interval=0.2) is not None, \
            "root's lock-holding session did not start"
        session_id = self.root_sql(find_holder)
        released = []

        def release():
            if not released:
                self.root_sql(f"KILL {session_id}")
                released.append(True)
        try:
            yield release
        finally:
            release()

    def app_sql_result(self, query, port=PROXY_PORT, env_file=APP_ENV_FILE):
        """SQL as the app's account through HAProxy. The password is read on the
        host from the app's root-only environment file (or a copy of an earlier
        one) and handed to the client in its environment, never on a command line."""
        return self.host.run(
            "set -a; . %s; MYSQL_PWD=\"$FLASKAPP_DB_PASSWORD\" "
            "mysql --batch --skip-column-names -h 127.0.0.1 -P %s -u \"$FLASKAPP_DB_USER\" -e %s",
            env_file, str(port), query)

    def app_sql(self, query, port=PROXY_PORT):
        result = self.app_sql_result(query, port)
        assert result.rc == 0, result.stderr
        return result.stdout

    def haproxy(self, command):
        """Send one command to HAProxy's admin socket and return its answer."""
        return self.host.check_output(
            "python3 -c %s %s %s",
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(sys.argv[2].encode()+b'\\n'); "
            "sys.stdout.write(b''.join(iter(lambda: s.recv(65536), b'')).decode())",
            STATS_SOCKET, command)

    def stats(self):
        return parse_show_stat(self.haproxy("show stat"))

    def server(self, server="mysql1", proxy=LISTEN_NAME):
        """One server's line of `show stat`."""
        return self.stats()[(proxy, server)]

    def haproxy_workers(self):
        """(current, old) HAProxy workers, as flaskstack-status reports them
        from the master socket's `show proc`: an old worker is still draining
        the connections it had before a reload."""
        match = re.search(r"workers: (\d+) current, (\d+) old", self.host.check_output(STATUS_COMMAND))
        assert match, "flaskstack-status shows no HAProxy workers"
        return int(match.group(1)), int(match.group(2))

    @contextlib.contextmanager
    def steady_reads(self, max_seconds=600, address="127.0.0.1", ports=APP_PORTS, streams=1, path="/todos"):
        """GET path over the ports at address, about 20 a second per stream, from the host
        (steady_reads.py, in the background) while the block runs. Yields a
        dict that holds, once the block is over, the script's result:
        {"requests": n, "seconds": s, "failures": [...], "slowest": [...]}."""
        base = f"/tmp/flaskstack-steady-reads-{os.getpid()}-{path.strip('/').replace('/', '-')}-{streams}"
        self.host.check_output("rm -f %s.stop %s.json", base, base)
        self.host.check_output(
            "nohup python3 -c %s %s %s %s %s %s %s %s >/dev/null 2>&1 &",
            (RESOURCES / "steady_reads.py").read_text(),
            ",".join(map(str, ports)), f"{base}.stop", f"{base}.json", str(max_seconds), address, str(streams), path)
        result = {}
        try:
            yield result
        finally:
            self.host.check_output("touch %s.stop", base)
            assert wait_for(lambda: self.host.file(f"{base}.json").exists, 40) is not None, "steady reads never ended"
            result.update(json.loads(self.host.file(f"{base}.json").content_string))

    @contextlib.contextmanager
    def app_sessions_sampled(self, interval=0.2, excluding=None):
        """The app account's sessions in MySQL, idle pooled ones too (MySQL holds
        them), counted on the host every `interval` seconds while the block runs,
        but those whose statement mentions `excluding` (a test's own session).
        Yields a list that holds, once the block is over, (Unix time, sessions) pairs."""
        base = f"/tmp/flaskstack-app-sessions-{os.getpid()}-{time.monotonic_ns()}"
        count = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{DB_USER}'"
        if excluding:
            count += f" AND COALESCE(INFO, '') NOT LIKE '%{excluding}%'"
        loop = (f'while [ ! -e {base}.stop ]; do echo "$(date +%s.%N) $(mysql -NBe "{count}")"; '
                f"sleep {interval}; done > {base}.log; rm -f {base}.stop")
        self.host.check_output("nohup sh -c %s >/dev/null 2>&1 &", loop)
        samples = []
        try:
            yield samples
        finally:
            self.host.check_output("touch %s.stop", base)
            # A line the loop is still writing has no count yet: left out below.
            log = self.host.check_output("cat %s.log; rm -f %s.log", base, base)
            samples.extend((float(at), int(sessions)) for at, sessions in
                           (line.split() for line in log.splitlines() if len(line.split()) == 2))

    def login_check(self, address="127.0.0.1"):
        """The database host's health check, asked as HAProxy asks it: (answer,
        checks it had answered before this one)."""
        response = self.http("/", CHECK_PORT, address=address)
        match = re.search(r"check (\d+) since the start", response.body)
        return response, int(match.group(1)) - 1 if match else None

    def mysql_status(self, name):
        """One of MySQL's global status counters, read as root."""
        return int(self.root_sql(f"SHOW GLOBAL STATUS LIKE '{name}'").split()[1])

    def main_pid(self, unit):
        return int(self.host.check_output("systemctl show -p MainPID --value %s", unit))

    @functools.cached_property
    def mysql_unit(self):
        """mysql (Oracle MySQL) or mariadb: MariaDB's package makes mysql.service an alias of its own."""
        return self.host.check_output("systemctl show -p Id --value mysql.service").removesuffix(".service")

    @property
    def flavor(self):
        return "mariadb" if self.mysql_unit == "mariadb" else "mysql"

    def unit_pids(self):
        """Main PIDs of every unit of the stack this host runs."""
        units = [self.mysql_unit, "haproxy", *(f"flaskapp@{port}" for port in APP_PORTS)]
        return {unit: self.main_pid(unit) for unit in units}

    def listening_addresses(self, port):
        """Every local address with a TCP socket listening on the port, as `ss`
        shows it: {'127.0.0.1'}, or {'*'} for a socket bound to every address."""
        out = self.host.check_output("ss -Hltn 'sport = :%s'", str(port))
        return {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if line.strip()}

    def env_file(self):
        return self.host.file(APP_ENV_FILE).content_string

    def app_python(self, code, **environment):
        """Run Python code with the deployed app importable (`import app`), in the
        environment its units get from the root-only file, with some of it
        replaced (environment), as root on the host. Returns testinfra's result."""
        overrides = "".join(f"{name}=%s; " for name in environment)
        return self.host.run(
            # No __pycache__ left in the app's directory: it would date the app's inputs after its start.
            f"set -a; . %s; {overrides}cd /opt/flaskapp/app; PYTHONDONTWRITEBYTECODE=1 /opt/flaskapp/venv/bin/python -c %s",
            APP_ENV_FILE, *environment.values(), code)

    def app_connection_tls(self):
        """(PyMySQL version as a tuple, whether the app's connections try TLS): the
        deployed app's engine, imported with the deployed environment file, hands
        out one connection, whose PyMySQL connection says whether it negotiates
        TLS when the server offers it."""
        result = self.app_python("import app, pymysql; c = app.engine.raw_connection(); "
                                 "print(pymysql.VERSION_STRING, c.driver_connection.ssl); c.close()")
        assert result.rc == 0, result.stderr
        version, tls = result.stdout.split()
        return tuple(int(part) for part in version.split(".")[:2]), tls == "True"

    def interrupted_rerun(self, *args, after_change_of, **extra_vars):
        """Rerun on this host only, cut off right after a task's change (interrupted_playbook)."""
        return interrupted_playbook("--limit", self.name, *args, *extra_vars_args(extra_vars),
                                    after_change_of=after_change_of)

    def rerun(self, *args, extra_inventories=(), **extra_vars):
        """Rerun the playbook on this host only: rerun("--tags", "haproxy", haproxy_server_maxconn=3)."""
        return run_playbook("--limit", self.name, *args, *extra_vars_args(extra_vars),
                            extra_inventories=extra_inventories)

    @contextlib.contextmanager
    def reconfigured(self, *args, restore_args=None, expect_success=True, extra_inventories=(), **extra_vars):
        """Rerun with changed values (or extra inventories); on the way out,
        whatever happened, rerun with the inventory's values: the same arguments
        without the extra variables (or restore_args). A failed restore fails the
        test. Yields a Reconfiguration."""
        change = Reconfiguration()
        change.result = self.rerun(*args, extra_inventories=extra_inventories, **extra_vars)
        try:
            if expect_success:
                assert_succeeded(change.result)
            yield change
        finally:
            change.restored = self.rerun(*(args if restore_args is None else restore_args))
            assert change.restored.returncode == 0, "restoring the inventory's values failed:\n" + failure_text(
                change.restored)


def wait_for(predicate, timeout, interval=0.5):
    """Seconds until predicate() held, or None if it did not within timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None
