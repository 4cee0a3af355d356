"""The single-host stack, proven through its real parts: systemd, HAProxy,
MySQL and HTTP through gunicorn."""
import pathlib
import re
import sys
import threading
import time

import pytest
from flaskstack_testlib import (APP_PORTS, CHECK_PORT, DB_NAME, DB_USER, DEFAULTS, HAPROXY_CONFIG, LISTEN_NAME,
                                MYSQL_PORT, PROJECT, PROXY_PORT, SEEDED_TODOS, SERVER_MAXCONN, STATS_SOCKET, assert_succeeded,
                                changed_items, changed_tasks, failure_text, recap, run_script, skipped_tasks, timing_window,
                                wait_for)

ROLE = PROJECT / "roles" / "flaskapp"
PLAIN_TEXT_SERVER = pathlib.Path(__file__).parent / "plain_text_mysql.py"
sys.path.insert(0, str(PROJECT / "collections"))
from ansible_collections.flaskstack.stack.plugins.filter.flaskapp import pins_for_python  # noqa: E402


def test_services_are_running_and_enabled(stack):
    for name in stack.unit_pids():
        service = stack.host.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


@pytest.mark.parametrize("port", [MYSQL_PORT, PROXY_PORT, *APP_PORTS])
def test_port_listens_on_loopback_only(stack, port):
    # The sockets themselves: one bound to every address would show as '*' or '0.0.0.0'.
    assert stack.listening_addresses(port) == {"127.0.0.1"}


def test_haproxy_accepts_the_deployed_config(host):
    assert host.run("haproxy -c -f %s", HAPROXY_CONFIG).rc == 0
    # It may hold the stats page's password hash: not world-readable.
    config_file = host.file(HAPROXY_CONFIG)
    assert (config_file.user, config_file.group, config_file.mode) == ("root", "haproxy", 0o640)


def test_haproxy_config_is_the_layer4_listener_of_the_original(host):
    config = {line.strip() for line in host.file(HAPROXY_CONFIG).content_string.splitlines()}
    for line in ("maxconn 100", f"stats socket {STATS_SOCKET} mode 660 level admin expose-fd listeners",
                 "timeout connect 5s", "timeout client 300s", "timeout server 300s",
                 f"listen {LISTEN_NAME}", f"bind 127.0.0.1:{PROXY_PORT}", "mode tcp", "option srvtcpka",
                 "tcp-request connection reject unless { src 127.0.0.1 }",
                 "balance roundrobin", "timeout queue 60s",
                 "option httpchk", "http-check send meth GET uri /", "http-check expect status 200",
                 f"server mysql1 127.0.0.1:{MYSQL_PORT} maxconn {SERVER_MAXCONN} check port {CHECK_PORT} inter 2s"):
        assert line in config, line


def test_root_of_each_instance_says_welcome(stack):
    for port in APP_PORTS:
        response = stack.http("/", port)
        assert (response.status, response.body) == (200, "Welcome!\n"), port


def test_todos_come_through_each_instance(stack):
    for port in APP_PORTS:
        response = stack.http("/todos", port)
        assert response.status == 200, port
        assert response.json() == SEEDED_TODOS, port


@pytest.mark.platform_independent
def test_sleep_runs_in_mysql_for_about_the_asked_time(stack):
    with timing_window():
        response = stack.http("/sleep/1")
    assert response.status == 200
    assert response.json() == {"slept": 1}
    assert 0.9 <= response.seconds < 2.5, response.seconds


@pytest.mark.parametrize("seconds", ["abc", "-1", "1e3", "nan", "100000"])
def test_sleep_refuses_what_is_not_a_bounded_number(stack, seconds):
    response = stack.http(f"/sleep/{seconds}")
    assert response.status == 400
    assert "error" in response.json()


def test_a_request_costs_mysql_one_statement(stack, observe):
    """On a warm pool, GET /todos and GET /sleep/0 each send MySQL exactly their
    query: no ping before it, no ROLLBACK after, counted by MySQL itself. Root
    reads the counters twice from one session, so the window holds no login of
    its own; the only other statements are that second SHOW STATUS and the health
    check's goodbyes (one COM_QUIT per check, every 2 s)."""
    requests, sleeps = 300, 20
    for port in APP_PORTS:
        assert stack.http_status("/todos", port) == 200  # warm: each instance's pooled connection is open
    counters = ("Questions", "Com_select", "Com_admin_commands", "Com_rollback", "Com_set_option")
    show = "SHOW GLOBAL STATUS WHERE Variable_name IN (%s);" % ", ".join(f"'{name}'" for name in counters)
    # The client connects and reads the counters within the second before the
    # first request; the window's length goes to the command's own output (fd 3).
    out = stack.host.check_output(
        "exec 3>&1; { echo %s; sleep 1; start=$(date +%%s%%N); "
        "for i in $(seq %s); do curl -sf -o /dev/null http://127.0.0.1:%s/todos || exit 1; done; "
        "for i in $(seq %s); do curl -sf -o /dev/null http://127.0.0.1:%s/sleep/0 || exit 1; done; "
        "printf 'window\\t%%s\\n' $(( $(date +%%s%%N) - start )) >&3; echo %s; } | mysql -N -B -n",
        show, str(requests), str(APP_PORTS[0]), str(sleeps), str(APP_PORTS[1]), show)
    rows = [line.split("\t") for line in out.splitlines()]
    window = int(next(value for name, value in rows if name == "window")) / 1e9
    readings = [(name, int(value)) for name, value in rows if name in counters]
    before, after = dict(readings[:len(counters)]), dict(readings[len(counters):])
    delta = {name: after[name] - before[name] for name in counters}
    other = delta["Questions"] - 1 - (requests + sleeps)  # 1: the second SHOW STATUS
    observe(f"[{stack.name}] {requests} GET /todos + {sleeps} GET /sleep/0 on a warm pool in {window:.1f} s: MySQL "
            f"counted {delta['Com_select']} SELECT, {delta['Com_admin_commands']} COM_PING and other admin "
            f"commands, {delta['Com_rollback']} ROLLBACK, {delta['Questions']} Questions in all ({other} besides "
            f"the requests and root's SHOW: health-check goodbyes): "
            f"{(delta['Com_select'] + delta['Com_admin_commands'] + delta['Com_rollback']) / (requests + sleeps):.2f} "
            "round trips per request")
    assert delta["Com_select"] == requests + sleeps, delta
    assert (delta["Com_admin_commands"], delta["Com_rollback"], delta["Com_set_option"]) == (0, 0, 0), delta
    assert 0 <= other <= window / 2 + 2, (delta, window)


# Six one-second reads at once in one app process with a pool of 2: with no
# overflow they take turns on the pool's two connections (three rounds); with
# overflow each opens a connection of its own (one round).
POOL_ROUNDS = """
import threading, time, app
import flask.testing  # before the threads: Python 3.9 breaks a lazy import made by six at once
statuses = []
def read():
    statuses.append(app.app.test_client().get('/sleep/1').status_code)
threads = [threading.Thread(target=read) for _ in range(6)]
started = time.monotonic()
for thread in threads: thread.start()
for thread in threads: thread.join()
print(round(time.monotonic() - started, 2), statuses)
"""


@pytest.mark.platform_independent
@pytest.mark.parametrize("max_overflow, fewest_seconds, most_seconds", [("0", 3.0, 5.5), ("10", 1.0, 2.9)])
def test_max_overflow_zero_holds_a_worker_to_its_pool(stack, observe, max_overflow, fewest_seconds, most_seconds):
    """flaskapp_db_max_overflow 0 (the recommended setting) never opens a
    connection beyond the pool: busy requests wait for a pooled one."""
    result = stack.app_python(POOL_ROUNDS, FLASKAPP_DB_POOL_SIZE="2", FLASKAPP_DB_MAX_OVERFLOW=max_overflow)
    assert result.rc == 0, result.stderr
    seconds, statuses = result.stdout.split(" ", 1)
    observe(f"[{stack.name}] 6 x /sleep/1 on a pool of 2, max_overflow {max_overflow}: {seconds} s")
    # Six statuses: a thread that died (not a request that ran) cannot pass for a round.
    assert statuses.strip() == str([200] * 6), result.stdout + result.stderr
    assert fewest_seconds <= float(seconds) <= most_seconds, result.stdout


def test_app_user_reads_todos_through_haproxy(stack):
    rows = stack.app_sql(f"SELECT id, item, status FROM {DB_NAME}.todos ORDER BY id")
    assert rows.splitlines() == [f"{id_}\t{row['item']}\t{row['status']}" for id_, row in SEEDED_TODOS.items()]


def test_processlist_shows_the_apps_sleep_from_the_app_user(stack):
    sleeper = threading.Thread(target=stack.http, args=("/sleep/3", APP_PORTS[1]))
    sleeper.start()
    try:
        seen = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and not seen:
            seen = [row for row in stack.root_sql("SHOW FULL PROCESSLIST").splitlines()
                    if f"\t{DB_USER}\t" in row and "SELECT SLEEP" in row]
        assert seen, f"no SELECT SLEEP from {DB_USER} in SHOW PROCESSLIST"
    finally:
        sleeper.join()


def test_app_skips_tls_when_the_whole_path_to_mysql_is_this_host(stack):
    # PyMySQL 1.2 would otherwise build a TLS context for every new connection.
    assert "FLASKAPP_DB_TLS=disabled" in stack.env_file()
    _, tries_tls = stack.app_connection_tls()
    assert not tries_tls


def test_an_app_that_requires_tls_never_falls_back_to_plain_text(stack):
    """The app in a verify mode, against this host's MySQL, which offers no TLS
    (MariaDB as Debian ships it) or a certificate from a CA the app does not
    trust (Oracle MySQL's own, MariaDB 11.8's): a 503 with the reason logged,
    never a query in plain text or over an unverified session."""
    result = stack.app_python("import app; print(app.app.test_client().get('/todos').status_code)",
                              FLASKAPP_DB_TLS="verify_ca", FLASKAPP_DB_TLS_CA="/etc/ssl/certs/ca-certificates.crt")
    assert result.stdout.strip() == "503", result.stdout + result.stderr
    reasons = ("doesn't support", "did not offer", "certificate verify failed")
    assert "database error" in result.stderr and any(reason in result.stderr for reason in reasons), result.stderr


@pytest.mark.host_independent
def test_a_server_on_the_path_that_offers_no_tls_gets_no_login_from_a_verify_mode(stack):
    """The app in a verify mode meets a MySQL look-alike that offers no TLS and
    would ask for the password in clear text: a 503, and not one byte of a
    login sent (no user name, no password), with each PyMySQL the app pins:
    the host's, and 1.1 (Ubuntu 20.04's Python 3.8), put first on the path."""
    port, old = 3399, "/tmp/pymysql-1.1"
    stack.host.check_output("/opt/flaskapp/venv/bin/pip download --quiet --no-deps --only-binary=:all: -d %s "
                            "pymysql==1.1.2", old)
    wheel = stack.host.check_output("ls %s/PyMySQL-1.1.2-*.whl %s/pymysql-1.1.2-*.whl 2>/dev/null || true", old, old)
    assert wheel, "PyMySQL 1.1.2's wheel was not downloaded"
    # As the app reads them from its environment file (hex, as the server reports what it received).
    secrets = dict(zip(("USER", "PASSWORD"), stack.app_python(
        "import os; print(os.environ['FLASKAPP_DB_USER'].encode().hex(), "
        "os.environ['FLASKAPP_DB_PASSWORD'].encode().hex())").stdout.split()))
    for pythonpath in ("", wheel.split()[0]):
        received = {}
        server = threading.Thread(target=lambda: received.update(run_script(stack.host, PLAIN_TEXT_SERVER, port, 20)))
        server.start()
        assert wait_for(lambda: stack.host.socket(f"tcp://127.0.0.1:{port}").is_listening, 10) is not None
        result = stack.app_python("import app, pymysql\n"
                                  "print(pymysql.VERSION_STRING, app.app.test_client().get('/todos').status_code)",
                                  FLASKAPP_DB_HOST="127.0.0.1", FLASKAPP_DB_PORT=str(port),
                                  FLASKAPP_DB_TLS="verify_identity",
                                  FLASKAPP_DB_TLS_CA="/etc/ssl/certs/ca-certificates.crt", PYTHONPATH=pythonpath)
        server.join(30)
        version, status = result.stdout.split()
        assert version.startswith("1.1.") == bool(pythonpath), result.stdout
        assert secrets["USER"] not in received["sent"], f"PyMySQL {version} sent the user name"
        assert secrets["PASSWORD"] not in received["sent"], f"PyMySQL {version} sent the password in clear text"
        assert received["sent"] == "", f"PyMySQL {version} sent {received['sent']}"
        # The app's refusal, or PyMySQL 1.2's own: either before any login.
        assert status == "503" and ("did not offer" in result.stderr or "doesn't support" in result.stderr), \
            result.stdout + result.stderr


def test_seeding_never_duplicates_rows(stack):
    # Verify runs after converge and the idempotence run: the seed ran twice.
    assert stack.root_sql(f"SELECT COUNT(*) FROM {DB_NAME}.todos") == str(len(SEEDED_TODOS))


def test_virtualenv_holds_the_pins_for_the_hosts_python(host):
    python = host.check_output("/opt/flaskapp/venv/bin/python -c %s",
                               "import platform; print(platform.python_version())")
    expected = pins_for_python((ROLE / "files" / "requirements.txt").read_text(), python)
    installed = {line.lower() for line in host.check_output("/opt/flaskapp/venv/bin/pip freeze").splitlines()}
    assert len(expected) == 6
    for pin in expected:
        assert pin.lower() in installed, pin


# Once per flavour: check mode's own logic (the reads that run anyway, the
# tasks that skip) is the roles', the same on Debian 12 and 13; both hosts'
# changed=0 in a real rerun is molecule's idempotence step.
@pytest.mark.platform_independent
def test_check_mode_on_the_converged_host_reports_no_changes(stack):
    result = assert_succeeded(stack.rerun("--check", "--diff"))
    assert recap(result.stdout, stack.name)["changed"] == 0, failure_text(result)
    # Every run prints the connection budget, MySQL's side and HAProxy's.
    # (The scenario's inventory holds every test host: the line has one entry per host.)
    assert re.search(rf"Connection budget: .*\b{stack.name}: servers' maxconn {SERVER_MAXCONN} \({stack.name}\) "
                     rf"\+ old workers' {SERVER_MAXCONN} after a reload \+ health checks 1 \+ administration \d+ = \d+, "
                     r"fits max_connections \d+", result.stdout)
    admin = DEFAULTS["haproxy"]["haproxy_admin_maxconn"]  # the metrics endpoint's share
    assert (f"global maxconn 100 holds the MySQL listener's {100 - admin} (its servers' maxconn {SERVER_MAXCONN}; "
            f"connections beyond wait in the queue), and {admin} for the stats page and metrics") in result.stdout


@pytest.mark.host_independent
def test_a_changed_app_file_is_restored_and_restarts_only_the_app(stack):
    """And an instance found stopped is started on the restored file, once:
    the restart is for the instances that ran the old one."""
    running, stopped = APP_PORTS
    pids = stack.unit_pids()
    stack.host.check_output("echo '# local edit' >> /opt/flaskapp/app/app.py")
    stack.host.check_output("systemctl stop flaskapp@%s", str(stopped))
    result = assert_succeeded(stack.rerun("--tags", "flaskapp"))
    assert changed_tasks(result.stdout) == ["flaskapp : Copy the app",
                                            "flaskapp : Start an instance per port and enable them at boot",
                                            "flaskapp : Restart the app"], failure_text(result)
    assert changed_items(result.stdout, "flaskapp : Restart the app") == [str(running)], failure_text(result)
    # The virtualenv holds every pin: no pip run (the role reads its site-packages instead).
    assert "flaskapp : Install the pinned requirements into the virtualenv" in skipped_tasks(result.stdout), \
        failure_text(result)
    assert "# local edit" not in stack.host.file("/opt/flaskapp/app/app.py").content_string
    for unit, pid in pids.items():
        if unit.startswith("flaskapp@"):
            assert stack.main_pid(unit) != pid, unit
        else:
            assert stack.main_pid(unit) == pid, unit
    for port in APP_PORTS:
        assert stack.http("/todos", port).status == 200


def test_app_account_uses_the_flavours_auth_plugin(stack):
    plugins = set(stack.root_sql(f"SELECT DISTINCT plugin FROM mysql.user WHERE user = '{DB_USER}'").splitlines())
    # Oracle MySQL: caching_sha2_password (set explicitly: given a password only, the
    # module would pick mysql_native_password). MariaDB: its default.
    assert plugins == ({"caching_sha2_password"} if stack.flavor == "mysql" else {"mysql_native_password"})


def test_mysql_starts_after_the_network_is_online(stack):
    # A bind address other than loopback exists only once the network is up.
    unit = stack.host.check_output("systemctl show -p After -p Wants %s", stack.mysql_unit)
    assert unit.count("network-online.target") == 2, unit


@pytest.mark.host_independent
def test_a_port_removed_from_flaskapp_ports_is_stopped_and_disabled(stack):
    kept, removed = APP_PORTS[0], APP_PORTS[1]
    wants_link = f"/etc/systemd/system/multi-user.target.wants/flaskapp@{removed}.service"
    assert stack.host.file(wants_link).exists
    with stack.reconfigured("--tags", "flaskapp", flaskapp_ports=[kept]) as change:
        assert "flaskapp : Stop and disable the instances of ports no longer listed" in \
            changed_tasks(change.result.stdout), failure_text(change.result)
        assert stack.host.run("systemctl is-active flaskapp@%s", str(removed)).stdout.strip() == "inactive"
        assert not stack.host.file(wants_link).exists
        assert not stack.listening_addresses(removed)
        assert stack.http("/todos", kept).status == 200
    # Listed again: started and enabled again.
    assert stack.host.file(wants_link).exists
    assert stack.http_status("/todos", removed) == 200
