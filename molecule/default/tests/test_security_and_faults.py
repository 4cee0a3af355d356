"""Bad input is refused, secrets stay out of sight, privileges and exposure are
minimal, and the stack recovers from faults by itself: each proven through the
real stack."""
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest
from flaskstack_testlib import (APP_ENV_FILE, APP_PORTS, CHECK_PORT, DB_NAME, DB_USER, DEFAULTS, HAPROXY_CONFIG,
                                MYSQL_PORT, PROXY_PORT, SEEDED_TODOS, SERVER_MAXCONN, assert_succeeded, changed_tasks,
                                connection_vars, deployed_password, failure_message, failure_text, recap, run_playbook,
                                timing_window, wait_for)

MAX_CONNECTIONS = DEFAULTS["mysql"]["mysql_max_connections"]
ADMIN_CONNECTIONS = DEFAULTS["mysql"]["mysql_admin_connections"]
GLOBAL_MAXCONN = DEFAULTS["haproxy"]["haproxy_global_maxconn"]
EXPORTER_CREDENTIALS = "/etc/prometheus/flaskstack-mysqld-exporter.cnf"

# --- Bad input to the playbook ---------------------------------------------------

BAD_VALUES = [
    ("haproxy_server_maxconn", "abc"),
    ("haproxy_global_maxconn", "0"),
    ("haproxy_bind_port", "70000"),
    ("mysql_port", "0"),
    ("haproxy_balance", "fastest"),
    ("mysql_app_password", ""),
    ("haproxy_backend_servers", []),
    ("haproxy_listen_name", "my sql"),
    ("flaskapp_db_pool_size", "-1"),
    ("flaskapp_db_max_overflow", "-1"),
    ("flaskapp_ports", [8000, 70000]),
    ("mysql_app_user_hosts", ["10.0.0.%"]),
    ("mysql_flavor", "oracle"),
    ("haproxy_server_limits", {"bad-haproxy_server_limits": {"maxconn": 0}}),
    ("haproxy_client_addresses", []),
    ("flaskapp_http_client_networks", ["clients.example.com"]),
    ("flaskapp_worker_connections", "0"),
    ("haproxy_admin_maxconn", "0"),
    ("haproxy_log_targets", ["stdout\n    stats socket /tmp/open.sock level admin"]),
    ("flaskapp_access_log_format", "%(h)s' --bind 0.0.0.0:80 '"),
    ("mysql_exporter_port", "abc"),
    ("haproxy_bind_address", "256.0.0.1"),
]


def whole_stack_inventory(path, hosts):
    """An inventory file of `hosts` (name: variables), each in every group."""
    path.write_text(json.dumps({"all": {
        "hosts": hosts, "children": {tier: {"hosts": dict.fromkeys(hosts)} for tier in ("mysql", "haproxy", "flaskapp")}}}))
    return str(path)


@pytest.fixture(scope="module")
def bad_value_run(stack, tmp_path_factory):
    """One playbook run over an inventory of aliases of this test host, each in
    every group and each with one bad value: every alias must stop on its own.
    The aliases share the test host's facts, gathered once into a fact cache
    (the check play gathers none where the cache has them): one gathering per
    alias costs a minute on a loaded machine and proves nothing here."""
    work = tmp_path_factory.mktemp("bad-values")
    # Each alias reaches the test host the way the scenario does (docker, or SSH as a sudo user).
    reach = {"ansible_host": stack.name, **connection_vars(stack.name)}
    aliases = {f"bad-{variable}": {**reach, variable: value} for variable, value in BAD_VALUES}
    facts = work / "facts"
    cache = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts)}
    (work / "gather.yml").write_text(json.dumps([{"hosts": "all", "gather_subset": ["network"], "tasks": []}]))
    gathered = run_playbook(inventory=whole_stack_inventory(work / "test-host.yml", {"test-host": reach}),
                            playbook=str(work / "gather.yml"), env=cache)
    assert_succeeded(gathered)
    [test_host_facts] = facts.iterdir()
    for alias in aliases:
        shutil.copy(test_host_facts, facts / test_host_facts.name.replace("test-host", alias))
    return run_playbook("--forks", str(len(aliases)), inventory=whole_stack_inventory(work / "hosts.yml", aliases),
                        env=cache)


@pytest.mark.host_independent
@pytest.mark.parametrize("variable", [variable for variable, _ in BAD_VALUES])
def test_bad_variable_stops_the_run_before_any_change(bad_value_run, variable):
    alias = f"bad-{variable}"
    assert bad_value_run.returncode != 0, failure_text(bad_value_run)
    assert variable in failure_message(bad_value_run, alias), failure_text(bad_value_run)
    counters = recap(bad_value_run.stdout, alias)
    assert (counters["changed"], counters["failed"]) == (0, 1), failure_text(bad_value_run)
    # It failed in the first play, which checks every role's input, before any role ran.
    assert "PLAY [Provision" not in bad_value_run.stdout, failure_text(bad_value_run)


@pytest.mark.host_independent
def test_unsupported_platform_is_refused_before_any_change(tmp_path):
    """A Debian 10 host (a Debian 12 container that says it is 10) is refused."""
    # One per test process: scenarios running side by side each run this test.
    container = f"flaskstack-unsupported-platform-{os.getpid()}"
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", container, "flaskstack/systemd:debian12",
                    "sleep", "600"], capture_output=True, check=True)
    try:
        subprocess.run(["docker", "exec", container, "sh", "-c",
                        "echo 10.13 > /etc/debian_version && "
                        "sed -i 's/^VERSION_ID=.*/VERSION_ID=\"10\"/; s/^VERSION_CODENAME=.*/VERSION_CODENAME=buster/'"
                        " /usr/lib/os-release"], check=True)
        result = run_playbook(inventory=whole_stack_inventory(tmp_path / "hosts.yml", {
            "older": {"ansible_connection": "community.docker.docker", "ansible_host": container}}))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    assert result.returncode != 0, failure_text(result)
    assert "Unsupported platform Debian-10" in failure_message(result), failure_text(result)
    assert recap(result.stdout, "older")["changed"] == 0, failure_text(result)
    assert "PLAY [Provision" not in result.stdout, failure_text(result)


# --- Bad input to the app -----------------------------------------------------------

HOSTILE_SECONDS = [
    "-1", "61", "1e3", "nan", "NaN", "inf", "0x10", "1.5.5", " 1", "1 ",
    f"1);DROP TABLE {DB_NAME}.todos;--",
    "1) OR SLEEP(5", f"1%29%3BDROP%20TABLE%20{DB_NAME}.todos%3B--",  # encoded once more on the wire
    "%31", "１",  # fullwidth digit one
    "9" * 3000,
]


def test_sleep_refuses_hostile_input_without_running_sql(stack):
    def selects():
        return int(stack.root_sql("SHOW GLOBAL STATUS LIKE 'Com_select'").split()[1])

    # Oracle MySQL's client runs a SELECT of its own on every login (MariaDB's does
    # not): count what reading the counter costs, with no request in between.
    before = selects()
    own_selects = selects() - before
    before += own_selects
    for seconds in HOSTILE_SECONDS:
        response = stack.http("/sleep/" + urllib.parse.quote(seconds, safe=""))
        assert response.status in (400, 404), (seconds[:40], response.status, response.body[:200])
        assert "error" in response.json(), seconds[:40]
    # Encoded slashes and dots change the route, never reach SQL either.
    for path in ("/sleep/1%2F..%2F..%2Ftodos", "/sleep/", "/sleep/1/2"):
        response = stack.http(path)
        assert response.status == 404 and "error" in response.json(), path
    assert selects() - own_selects == before, "a refused request ran a SELECT"
    assert stack.root_sql(f"SELECT COUNT(*) FROM {DB_NAME}.todos") == str(len(SEEDED_TODOS))


def test_unknown_routes_are_json_404(stack):
    response = stack.http("/nope")
    assert response.status == 404
    assert "error" in response.json()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_json_405(stack, method):
    response = stack.http("/todos", method=method)
    assert response.status == 405
    assert "error" in response.json()


# --- Secrets ----------------------------------------------------------------------

def test_password_is_only_in_the_root_only_env_file(stack):
    env_file = stack.host.file(APP_ENV_FILE)
    assert (env_file.user, env_file.group, env_file.mode) == ("root", "root", 0o600)
    assert stack.host.file(os.path.dirname(APP_ENV_FILE)).mode == 0o700
    found = stack.host.run("set -a; . %s; grep -rlsF -- \"$FLASKAPP_DB_PASSWORD\" "
                           "/etc /opt /var /root /home /tmp /run /srv /usr/local", APP_ENV_FILE)
    assert found.stdout.split() == [APP_ENV_FILE]


def test_password_is_not_on_any_command_line(stack):
    password = deployed_password(stack)
    assert len(password) >= 16
    command_lines = stack.host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' || true")
    assert "gunicorn" in command_lines
    assert password not in command_lines
    assert password not in stack.host.check_output("ps -eo args")


# --- Least privilege and exposure --------------------------------------------------

def test_app_account_has_exactly_the_configured_grants(stack):
    grants = [line.split(" TO ")[0] for line in stack.root_sql(f"SHOW GRANTS FOR '{DB_USER}'@'127.0.0.1'").splitlines()]
    assert grants == ["GRANT USAGE ON *.*", f"GRANT SELECT ON `{DB_NAME}`.*"], grants
    # No account for any host but HAProxy's: none for localhost, the unix socket.
    assert stack.root_sql(f"SELECT Host FROM mysql.user WHERE User = '{DB_USER}' ORDER BY Host").split() == \
        ["127.0.0.1"]


def test_the_app_account_cannot_go_around_haproxy_through_the_socket(stack):
    over_socket = stack.host.run("set -a; . %s; MYSQL_PWD=\"$FLASKAPP_DB_PASSWORD\" "
                                 "mysql --batch -u \"$FLASKAPP_DB_USER\" -e 'SELECT 1'", APP_ENV_FILE)
    assert over_socket.rc != 0 and "Access denied" in over_socket.stderr, (over_socket.rc, over_socket.stderr)
    assert stack.app_sql("SELECT 1").strip() == "1"


def test_load_data_local_is_off_and_sql_files_stay_in_one_directory(stack):
    # MariaDB's own default is on: a client could have the server read its files.
    assert stack.root_sql("SELECT @@GLOBAL.local_infile") == "0"
    # MariaDB's own default is empty: anywhere mysqld may read and write (what
    # that means for an account with FILE: the grant-all test below).
    assert stack.root_sql("SELECT @@GLOBAL.secure_file_priv").rstrip("/") == "/var/lib/mysql-files"


# What a --tags mysql rerun with the inventory's values restores on a server that
# users and operators changed, and what it keeps.
USERS_ACCOUNTS = ["''@'localhost'", "''@'%'", "'root'@'%'"]  # locked: nobody can use them meanwhile
# Open for a moment, on loopback: root for any local process, and anyone's.
PASSWORD_LESS_ACCOUNTS = ["'root'@'127.0.0.1'", "'flaskstack_no_password'@'localhost'"]
LOCKED_ACCOUNT = "'flaskstack_locked_test'@'localhost'"
RESTORED_FOR_USERS = [
    "mysql : Start the server and enable it at boot",
    "mysql : Create the directory of MySQL's unit drop-ins",
    "mysql : Drop the anonymous accounts",
    "mysql : Drop root's accounts for other hosts",
    "mysql : Drop the accounts that log in with an empty password",
    "mysql : Insert the seed rows whose id is missing",
    "mysql : Write the exporter's credentials",
    "mysql : Start the exporter and enable it at boot",
    "mysql : Start the health check, and at boot",
    "mysql : Restart the MySQL exporter"]
GRANT_GIVEN = "mysql : Grant all privileges, as the original write-up does"
GRANT_TAKEN_BACK = "mysql : Create the application account"


@pytest.mark.platform_independent
def test_the_originals_grant_all_is_opt_in_idempotent_and_a_rerun_restores_only_what_the_role_owns(stack):
    """The original write-up's GRANT ALL, by a variable: on with one change,
    again with none, and off again by the rerun with the inventory's values.
    That rerun (--tags mysql) also meets a server that users and operators
    changed: a seed row edited (kept) and one deleted (inserted again), stray
    accounts (dropped: anonymous ones, root's for other hosts and any that logs
    in with an empty password; kept: a locked one and the socket's), MySQL, its
    exporter and its health check disabled at boot (enabled again), and the
    modes of the exporter's credentials and the unit drop-ins' directory
    loosened (tightened again: the role's look at its files must see it, though
    the content is unchanged). One rerun for both: it changes exactly the sum."""
    def app_reads_mysql_user_table():
        return stack.app_sql_result("SELECT COUNT(*) FROM mysql.user").rc == 0

    # Disabled at boot, left running (stopping them would take the stack down
    # under the other tests): the role's look at the units must see it and run
    # their start-and-enable tasks, which it skips for units running and enabled.
    units = [stack.mysql_unit, "prometheus-mysqld-exporter", "flaskstack-mysql-check"]
    drop_ins = f"/etc/systemd/system/{stack.mysql_unit}.service.d"
    assert not app_reads_mysql_user_table()
    try:
        with stack.reconfigured("--tags", "mysql", mysql_app_grant_all_privileges="true") as change:
            assert changed_tasks(change.result.stdout) == [GRANT_GIVEN]
            assert app_reads_mysql_user_table()
            # With FILE (in ALL), the server still reads and writes no file for SQL but in secure_file_priv.
            assert stack.app_sql("SELECT LOAD_FILE('/etc/passwd') IS NULL").strip() == "1"
            written = stack.app_sql_result("SELECT 1 INTO OUTFILE '/tmp/flaskstack-outfile-test'")
            assert written.rc != 0 and "ERROR 1290" in written.stderr, (written.rc, written.stderr)
            again = assert_succeeded(stack.rerun("--tags", "mysql", mysql_app_grant_all_privileges="true"))
            assert changed_tasks(again.stdout) == [], failure_text(again)
            # What users and operators changed, for the rerun with the inventory's values that leaving runs.
            stack.root_sql(f"UPDATE {DB_NAME}.todos SET status = 'changed by a user' WHERE id = 1; "
                           f"DELETE FROM {DB_NAME}.todos WHERE id = 2")
            stack.root_sql("; ".join(f"CREATE USER IF NOT EXISTS {user} ACCOUNT LOCK" for user in USERS_ACCOUNTS))
            stack.root_sql("; ".join(f"CREATE USER IF NOT EXISTS {account}" for account in PASSWORD_LESS_ACCOUNTS))
            stack.root_sql(f"CREATE USER IF NOT EXISTS {LOCKED_ACCOUNT} ACCOUNT LOCK")
            stack.host.check_output("systemctl disable --quiet %s %s %s", *units)
            stack.host.check_output("chmod 0644 %s && chmod 0777 %s", EXPORTER_CREDENTIALS, drop_ins)
        changed = changed_tasks(change.restored.stdout)
        assert sorted(changed) == sorted([*RESTORED_FOR_USERS, GRANT_TAKEN_BACK]), failure_text(change.restored)
        assert not app_reads_mysql_user_table()
        assert stack.host.check_output("stat -c %%a %s %s", EXPORTER_CREDENTIALS, drop_ins).split() == ["640", "755"]
        assert stack.root_sql(f"SELECT id, status FROM {DB_NAME}.todos ORDER BY id").splitlines() == [
            "1\tchanged by a user", f"2\t{SEEDED_TODOS['2']['status']}"]
        assert stack.root_sql("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User = '' OR "
                              "(User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'))") == ""
        left = stack.root_sql("SELECT CONCAT(\"'\", User, \"'@'\", Host, \"'\") FROM mysql.user WHERE User IN "
                              "('root', 'flaskstack_no_password', 'flaskstack_locked_test', 'flaskstack_check')")
        assert sorted(left.split()) == ["'flaskstack_check'@'localhost'", LOCKED_ACCOUNT, "'root'@'localhost'"], left
        assert all(stack.host.service(unit).is_enabled for unit in units)
    finally:
        stack.root_sql(f"UPDATE {DB_NAME}.todos SET status = '{SEEDED_TODOS['1']['status']}' WHERE id = 1")
        # The table has no key on id (the original's schema): insert row 2 only where it is missing.
        stack.root_sql(f"INSERT INTO {DB_NAME}.todos (id, item, status) SELECT 2, "
                       f"'{SEEDED_TODOS['2']['item']}', '{SEEDED_TODOS['2']['status']}' FROM DUAL "
                       f"WHERE NOT EXISTS (SELECT 1 FROM {DB_NAME}.todos WHERE id = 2)")
        stack.root_sql(f"DROP USER IF EXISTS {', '.join(USERS_ACCOUNTS + PASSWORD_LESS_ACCOUNTS + [LOCKED_ACCOUNT])}")
        stack.host.run("systemctl enable --quiet %s %s %s", *units)
        stack.host.run("chmod 0640 %s && chmod 0755 %s", EXPORTER_CREDENTIALS, drop_ins)
        # A restoring rerun that failed leaves the grant: the next tests must not inherit it.
        if app_reads_mysql_user_table():
            stack.rerun("--tags", "mysql")


def test_gunicorn_runs_sandboxed_and_unprivileged(stack):
    for port in APP_PORTS:
        unit = f"flaskapp@{port}"
        properties = dict(line.split("=", 1) for line in stack.host.check_output(
            "systemctl show -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp "
            "-p PrivateDevices %s", unit).splitlines())
        assert properties == {"User": "flaskapp", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                              "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes"}, unit
        status = stack.host.file(f"/proc/{stack.main_pid(unit)}/status").content_string
        assert "\nNoNewPrivs:\t1\n" in status
        uid = int(status.split("\nUid:\t")[1].split()[0])
        assert uid != 0 and stack.host.user("flaskapp").uid == uid
        assert stack.host.user("flaskapp").shell == "/usr/sbin/nologin"
        # Its code and virtualenv are root's: the app cannot change them.
        assert stack.host.file("/opt/flaskapp/app/app.py").user == "root"
        assert stack.http("/todos", port).status == 200


# systemd-analyze security's exposure for the app's unit (0 is best, 10 worst), the
# same on systemd 247, 252, 257 and 262 (measured): a loosened sandbox fails.
APP_UNIT_EXPOSURE = 1.3


def test_the_app_units_sandbox_scores_no_worse(stack, observe):
    report = stack.host.check_output("systemd-analyze security --no-pager flaskapp@%s.service", str(APP_PORTS[0]))
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", report).group(1))
    observe(f"[{stack.name}] systemd-analyze security flaskapp@{APP_PORTS[0]}: {exposure}")
    assert exposure <= APP_UNIT_EXPOSURE, report
    # gevent's worker connections fit the open-file limit.
    limits = stack.host.file(f"/proc/{stack.main_pid(f'flaskapp@{APP_PORTS[0]}')}/limits").content_string
    assert int(re.search(r"Max open files\s+(\d+)", limits).group(1)) >= \
        DEFAULTS["flaskapp"]["flaskapp_worker_connections"] + 256


def test_gunicorn_exchanges_packets_only_with_this_host_and_the_proxies(stack):
    # On one host, the proxy is on loopback: the host's own address is neither.
    own_address = stack.host.check_output("ip -4 -o route get 192.0.2.1").split(" src ")[1].split()[0]
    for port in APP_PORTS:
        assert stack.http_status("/todos", port) == 200
        dropped = stack.host.run("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 --interface %s "
                                 "http://127.0.0.1:%s/todos", own_address, str(port))
        assert dropped.stdout == "000" and dropped.rc == 28, (dropped.rc, dropped.stdout, dropped.stderr)


# --- Faults, each recovered without rerunning the playbook ---------------------------

@pytest.mark.platform_independent
def test_killed_gunicorn_master_is_restarted_by_systemd(stack, observe):
    unit, port = f"flaskapp@{APP_PORTS[0]}", APP_PORTS[0]
    pid = stack.main_pid(unit)
    # A loose bound (systemd's RestartSec is 1 s): no need of the exclusive window.
    stack.host.check_output("kill -9 %s", str(pid))
    recovered = wait_for(lambda: stack.main_pid(unit) not in (0, pid) and stack.http_status("/todos", port) == 200, 10)
    observe(f"[{stack.name}] {unit} killed with SIGKILL: answering again after {recovered}s")
    assert recovered is not None, "no answer within 10 s"


def test_app_survives_a_mysql_restart(stack):
    for port in APP_PORTS:
        assert stack.http_status("/todos", port) == 200  # pooled connections are open
    stack.host.check_output("systemctl restart %s", stack.mysql_unit)
    # A restart slower than HAProxy's fall (3 checks, 2 s apart; Oracle MySQL on a
    # loaded machine) gets the server marked DOWN until two checks pass again.
    assert wait_for(lambda: stack.server()["status"] == "UP", 15) is not None, stack.server()
    # Then the read that finds its pooled connection dead is retried once on a new one.
    for port in APP_PORTS:
        response = stack.http("/todos", port)
        assert response.status == 200, response.body


@contextlib.contextmanager
def pooled_connections_cut(stack, per_instance):
    """Warm both instances' pools, let the block cut their connections, then
    send per_instance GET /todos to each: yields a record that gets the
    statuses, the app's log since the cut and how many reads it retried."""
    for port in APP_PORTS:
        assert stack.http_status("/todos", port) == 200  # pooled connections are open
    since = stack.host.check_output("date +%s.%N")
    record = {}
    yield record
    record["statuses"] = [stack.http_status("/todos", port) for port in APP_PORTS for _ in range(per_instance)]
    record["log"] = "".join(stack.host.check_output("journalctl -u flaskapp@%s --since @%s --no-pager -o cat",
                                                    str(port), since) for port in APP_PORTS)
    record["retried"] = record["log"].count("retrying once")


def test_app_survives_a_haproxy_restart(stack, observe):
    """A restart of HAProxy cuts every pooled connection at once: the first
    read on each instance finds its connection dead and is retried on a new
    one, so no request fails."""
    with pooled_connections_cut(stack, per_instance=3) as after:
        stack.host.check_output("systemctl restart haproxy")
    observe(f"[{stack.name}] HAProxy restarted under warm pools: the next {len(after['statuses'])} requests "
            f"{sorted(set(after['statuses']))}, {after['retried']} reads retried on a new connection")
    assert after["statuses"] == [200] * len(after["statuses"]), after["log"]
    # The restart did cut the pooled connections: each instance's first read met a dead one.
    assert after["retried"] >= len(APP_PORTS), after["log"]


def test_pooled_connections_killed_in_mysql_cost_no_request(stack, observe):
    """Without a ping before each use, a pooled connection MySQL killed (or a
    timeout closed) is found dead by the read, which the app retries once on a
    new connection: every request still succeeds."""
    with pooled_connections_cut(stack, per_instance=5) as after:
        pooled = stack.root_sql(f"SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{DB_USER}'").split()
        assert len(pooled) >= len(APP_PORTS), pooled
        for session in pooled:
            stack.root_sql(f"KILL {session}")
    observe(f"[{stack.name}] KILLed the app's {len(pooled)} pooled connections: the next {len(after['statuses'])} "
            f"requests {sorted(set(after['statuses']))}, {after['retried']} reads retried on a new connection")
    assert after["statuses"] == [200] * len(after["statuses"]), after["log"]
    assert after["retried"] >= len(APP_PORTS), after["log"]


def outage(stack, unit, marked_down=None, marked_up=None, measured=True):
    """Stop a unit under the running app and see how the app answers (and, if
    given, how long until HAProxy marks the server down); start it again and see
    how long until every instance answers (and HAProxy marks it up). In a
    measured window where a bound is tight (measured=True)."""
    record = {}
    with timing_window() if measured else contextlib.nullcontext():
        stack.host.check_output("systemctl stop %s", unit)
        try:
            record["during"] = stack.http("/todos")
            if marked_down:
                record["marked_down_after"] = wait_for(marked_down, 15)
        finally:
            stack.host.check_output("systemctl start %s", unit)
        record["recovered_after"] = wait_for(
            lambda: all(stack.http_status("/todos", port) == 200 for port in APP_PORTS)
            and (marked_up is None or marked_up()), 20, interval=0.1)
    return record


# Every instance answers 200 this soon after MySQL's start returned: HAProxy
# checks a DOWN server every 250 ms and marks it UP after two passed checks
# (haproxy_server_check_down_interval, _fast_interval).
RECOVERED_WITHIN = 1.5


@pytest.mark.platform_independent
def test_mysql_down_gives_a_quick_503_and_haproxy_marks_it_down(stack, observe):
    record = outage(stack, stack.mysql_unit,
                    marked_down=lambda: stack.server("mysql1")["status"] == "DOWN",
                    marked_up=lambda: stack.server("mysql1")["status"] == "UP")
    during = record["during"]
    observe(f"[{stack.name}] MySQL stopped: /todos {during.status} in {during.seconds:.2f}s; "
          f"HAProxy marked it DOWN after {record['marked_down_after']}s; "
          f"all instances 200 and server UP again {record['recovered_after']}s after the start")
    assert during.status == 503 and during.json() == {"error": "database unavailable"}
    assert during.seconds < 10
    assert record["marked_down_after"] is not None, "HAProxy's check did not mark MySQL DOWN in 15 s"
    assert record["recovered_after"] is not None, "no recovery within 20 s of MySQL's start"
    assert record["recovered_after"] <= RECOVERED_WITHIN, record["recovered_after"]


@pytest.mark.platform_independent
def test_haproxy_down_gives_a_quick_503_and_the_app_recovers(stack, observe):
    since = stack.host.check_output("date +%s.%N")
    # Loose bounds (an answer within 10 s, every instance back within 20 s): no measured window.
    record = outage(stack, "haproxy", measured=False)
    during = record["during"]
    observe(f"[{stack.name}] HAProxy stopped: /todos {during.status} in {during.seconds:.2f}s; "
          f"all instances 200 again {record['recovered_after']}s after the start")
    assert during.status == 503 and during.json() == {"error": "database unavailable"}
    assert during.seconds < 10
    assert record["recovered_after"] is not None, "no recovery within 20 s of HAProxy's start"
    # The client learns nothing of the inside; the app's log names the cause, and the access log the 503.
    log = stack.host.check_output("journalctl -u flaskapp@%s --since @%s --no-pager -o cat", str(APP_PORTS[0]), since)
    assert re.search(r"database error: OperationalError: .*Can't connect to MySQL server on '[^']+'.*refused", log), log
    assert re.search(r'"GET /todos HTTP/1\.1" 503 ', log), log


# --- Health checks that know MySQL, and do it no harm --------------------------------

def check_interval_seconds(stack):
    """The server's check interval, from the deployed haproxy.cfg."""
    match = re.search(r" check (?:port \d+ )?inter (\d+)(ms|s)\b", stack.host.file(HAPROXY_CONFIG).content_string)
    assert match, "no checked server in haproxy.cfg"
    return int(match.group(1)) / (1000 if match.group(2) == "ms" else 1)


@pytest.mark.platform_independent
def test_a_mysql_that_accepts_no_logins_is_marked_down_then_up_again(stack, observe):
    pid = str(stack.main_pid(stack.mysql_unit))
    # No timing window: the bounds are loose, and nothing else on this host runs meanwhile.
    # A hung server: the kernel still completes TCP connects, MySQL answers nothing.
    stack.host.check_output("kill -STOP %s", pid)
    try:
        port_open = stack.host.run("timeout 2 bash -c %s",
                                   f"exec 3<>/dev/tcp/127.0.0.1/{MYSQL_PORT}").rc == 0
        marked_down = wait_for(lambda: stack.server()["status"] == "DOWN", 40)
        answer, _ = stack.login_check()
        status_while_hung = stack.server()["check_status"].lstrip("* ")  # "*": a check under way
    finally:
        stack.host.check_output("kill -CONT %s", pid)
    marked_up = wait_for(lambda: stack.server()["status"] == "UP", 20)
    observe(f"[{stack.name}] MySQL stopped answering (SIGSTOP), port still open: HAProxy marked it DOWN "
            f"after {marked_down}s ({status_while_hung}: {answer.body.strip()}); UP {marked_up}s after SIGCONT")
    assert port_open, "the stopped server's port refused connections: this test needs it open"
    assert marked_down is not None, "a server that accepts no logins stayed UP for 40 s"
    assert answer.status == 503 and "refuses logins" in answer.body
    assert status_while_hung == "L7STS"
    assert marked_up is not None, "not UP again within 20 s of the server answering again"
    assert wait_for(lambda: all(stack.http_status("/todos", port) == 200 for port in APP_PORTS), 20) is not None


def test_health_checks_never_touch_mysqls_port(stack, observe):
    """The checks log in over the socket and send no SQL. A check that
    connected to MySQL's port would count as an aborted connect each time (and,
    with name resolution on, as a connection error against the proxy's host,
    which max_connect_errors blocks): the multi-host scenario and the Oracle
    MySQL one run a compressed version of hours of checks with a small
    max_connect_errors."""
    interval = check_interval_seconds(stack)
    aborted_before, set_before = stack.mysql_status("Aborted_connects"), stack.mysql_status("Com_set_option")
    _, answered_before = stack.login_check()
    time.sleep(4 * interval + 1)
    _, answered_after = stack.login_check()
    aborted_after, set_after = stack.mysql_status("Aborted_connects"), stack.mysql_status("Com_set_option")
    checks = answered_after - answered_before - 1  # not our own first request
    observe(f"[{stack.name}] {checks} health checks in {4 * interval + 1:.0f}s: Aborted_connects "
            f"{aborted_before} -> {aborted_after}, Com_set_option {set_before} -> {set_after}")
    assert checks >= 3, f"HAProxy asked the login check {checks} times in {4 * interval + 1}s"
    assert aborted_after == aborted_before
    # A login and nothing more: not even the SET NAMES a driver sends after it.
    assert set_after == set_before, "the check sends SQL after its login"
    assert stack.server()["check_status"].lstrip("* ") == "L7OK"  # "*": a check under way


# What a TCP client bound to a source address receives first: bytes, or
# 'no answer' when the packets are dropped (or 'refused', 'closed').
FIRST_ANSWER = ("import socket, sys\n"
                "try:\n"
                "    with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2,\n"
                "                                  source_address=(sys.argv[1], 0)) as sock:\n"
                "        sock.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
                "        print('bytes' if sock.recv(64) else 'closed')\n"
                "except socket.timeout:\n"
                "    print('no answer')\n"
                "except ConnectionRefusedError:\n"
                "    print('refused')\n")


def test_mysql_and_the_check_exchange_packets_only_with_this_host_and_the_proxies(stack):
    """On one host the proxy is on loopback, which MySQL's and the check's units
    admit (IPAddressAllow), and the host's own address is not a proxy's: a
    client from it gets no answer from either, whatever it sends."""
    address = stack.host.check_output("ip -4 -o route get 192.0.2.1").split(" src ")[1].split()[0]
    assert stack.login_check()[0].status == 200
    assert stack.listening_addresses(CHECK_PORT) == {"127.0.0.1"}
    for port in (MYSQL_PORT, CHECK_PORT):
        answers = {source: stack.host.check_output("python3 -c %s %s 127.0.0.1 %s", FIRST_ANSWER, source, str(port))
                   for source in ("127.0.0.1", address)}
        assert answers == {"127.0.0.1": "bytes", address: "no answer"}, (port, answers)


def test_the_check_logs_in_without_a_password_and_may_do_nothing_else(stack):
    account = "flaskstack_check"
    grants = stack.root_sql(f"SHOW GRANTS FOR '{account}'@'localhost'")
    assert grants.startswith("GRANT USAGE ON *.* TO") and "\n" not in grants.strip(), grants
    plugin = stack.root_sql(f"SELECT plugin FROM mysql.user WHERE User = '{account}'")
    assert plugin == {"mysql": "auth_socket", "mariadb": "unix_socket"}[stack.flavor]
    # Another Unix user cannot log in as it.
    denied = stack.host.run("mysql -u %s -e 'SELECT 1'", account)
    assert denied.rc != 0 and "denied" in denied.stderr, denied.stderr
    unit = stack.host.service("flaskstack-mysql-check")
    assert unit.is_running and unit.is_enabled
    assert stack.host.check_output("systemctl show -p User --value flaskstack-mysql-check") == account


# --- A connection budget that adds up ------------------------------------------------

@pytest.mark.host_independent
def test_a_budget_over_max_connections_stops_the_run_before_any_change(stack):
    # The defaults: one proxy's server maxconn, as much for its old worker after a
    # reload, its check, and room for administration.
    needed = 2 * SERVER_MAXCONN + 1 + ADMIN_CONNECTIONS
    result = stack.rerun(mysql_max_connections=needed - 1)
    assert result.returncode != 0
    message = failure_message(result)
    assert (f"{stack.name}: servers' maxconn {SERVER_MAXCONN} ({stack.name}) + old workers' {SERVER_MAXCONN} after a "
            f"reload + health checks 1 + administration {ADMIN_CONNECTIONS} = {needed}, "
            f"EXCEEDS max_connections {needed - 1}") in message, message
    assert recap(result.stdout, stack.name)["changed"] == 0
    assert stack.root_sql("SELECT @@global.max_connections") == str(MAX_CONNECTIONS)


@pytest.mark.host_independent
def test_http_clients_cannot_take_the_mysql_listeners_share(stack):
    # HTTP's share would leave the MySQL listener one connection fewer than its server may use
    # (the metrics endpoint has its own share too).
    http_share = GLOBAL_MAXCONN - DEFAULTS["haproxy"]["haproxy_admin_maxconn"] - SERVER_MAXCONN + 1
    result = stack.rerun(haproxy_http_enabled=True, haproxy_http_maxconn=http_share)
    assert result.returncode != 0
    message = failure_message(result)
    assert (f"MySQL listener's maxconn ({SERVER_MAXCONN - 1}) must admit its servers' maxconn ({SERVER_MAXCONN})"
            in message), message
    assert f"HTTP entry point's ({http_share})" in message and f"global maxconn ({GLOBAL_MAXCONN})" in message
    assert recap(result.stdout, stack.name)["changed"] == 0


@pytest.mark.platform_independent
def test_max_connections_changes_live_without_a_restart(stack):
    pid = stack.main_pid(stack.mysql_unit)
    # The limits' own tag: the rest of the role is left alone.
    with stack.reconfigured("--tags", "mysql_limits", mysql_max_connections=40) as change:
        assert changed_tasks(change.result.stdout) == [
            "mysql : Keep the live settings for the next start", "mysql : Apply the live settings to the running server"]
        assert stack.root_sql("SELECT @@global.max_connections") == "40"
        # And kept for the next start, in the role's own option file.
        assert stack.host.run("grep -rlx 'max_connections = 40' /etc/mysql").stdout.strip().endswith(
            "/zz-flaskstack-limits.cnf")
    assert stack.root_sql("SELECT @@global.max_connections") == str(MAX_CONNECTIONS)
    assert stack.main_pid(stack.mysql_unit) == pid


# --- A run cut off after a change still gets it applied -------------------------------

def app_pool_size(stack):
    """The pool size the running app was started with (its main process's environment)."""
    pid = stack.main_pid(f"flaskapp@{APP_PORTS[0]}")
    environ = stack.host.check_output("tr '\\0' '\\n' < /proc/%s/environ", str(pid))
    return int(re.search(r"^FLASKAPP_DB_POOL_SIZE=(\d+)$", environ, re.MULTILINE).group(1))


def mysql_in_effect(stack):
    """MySQL's skip_name_resolve as it runs, and whether its unit's IP filter
    as systemd applies it holds the test's network."""
    allowed = stack.host.check_output("systemctl show -p IPAddressAllow --value %s", stack.mysql_unit).split()
    return bool(int(stack.root_sql("SELECT @@global.skip_name_resolve"))), "192.0.2.0/24" in allowed


# Per tier: changed values, the tasks that write them (the run is cut off after
# the last), what applies them (a handler, or for systemd's reload, whose
# handler reports no change, the role's look for what is owed), and what shows
# the values in effect, with the values expected there.
OWED = {
    # The option file needs MySQL's restart; the unit's drop-in (its IP filter) systemd's reload.
    "mysql": ({"mysql_skip_name_resolve": not DEFAULTS["mysql"]["mysql_skip_name_resolve"],
               "mysql_allowed_networks": ["192.0.2.0/24"]},
              ["mysql : Set the listen address and port", "mysql : Write MySQL's unit drop-in"],
              ["mysql : Restart MySQL", "mysql : Apply what an earlier run changed but never applied"],
              mysql_in_effect, (not DEFAULTS["mysql"]["mysql_skip_name_resolve"], True)),
    "haproxy": ({"haproxy_server_maxconn": SERVER_MAXCONN - 3}, ["haproxy : Write haproxy.cfg"],
                ["haproxy : Reload HAProxy"], lambda stack: int(stack.server()["slim"]), SERVER_MAXCONN - 3),
    "flaskapp": ({"flaskapp_db_pool_size": DEFAULTS["flaskapp"]["flaskapp_db_pool_size"] + 1},
                 ["flaskapp : Write the app's environment file"], ["flaskapp : Restart the app"], app_pool_size,
                 DEFAULTS["flaskapp"]["flaskapp_db_pool_size"] + 1),
}


def cut_off_then_rerun(stack, tier):
    """A run (--tags tier) is SIGKILLed the moment it writes the last changed
    value: it never reaches its handlers. The next run with the same values
    finds the files already right, and must still restart or reload."""
    variables, writers, appliers, in_effect, expected = OWED[tier]
    before = in_effect(stack)
    output, cut = stack.interrupted_rerun("--tags", tier, after_change_of=writers[-1], **variables)
    try:
        assert cut, f"{writers[-1]} reported no change:\n{output[-3000:]}"
        # The premise: the changes are on disk, not in effect (nothing applied them).
        assert in_effect(stack) == before, f"{appliers} ran before the run was cut off"
        rerun = assert_succeeded(stack.rerun("--tags", tier, **variables))
        changed = changed_tasks(rerun.stdout)
        assert not set(writers) & set(changed), "the cut-off run had not written the changes"
        assert set(appliers) <= set(changed), f"the changes were never applied: {changed}"
        assert in_effect(stack) == expected
    finally:
        assert_succeeded(stack.rerun("--tags", tier))
    assert in_effect(stack) == before


# MySQL's restart and systemd's reload on each flavour (Debian 12's and 13's
# systemd in a hybrid cgroup tree, unstable's in cgroup v2); HAProxy's reload
# and the app's restart are the same whatever the flavour (once per make test).
# Three tests, not one parametrized: the hosts take turns with them.
@pytest.mark.platform_independent
def test_a_run_cut_off_before_mysqls_restart_leaves_the_next_run_to_restart_it(stack):
    cut_off_then_rerun(stack, "mysql")


@pytest.mark.host_independent
def test_a_run_cut_off_before_haproxys_reload_leaves_the_next_run_to_reload_it(stack):
    cut_off_then_rerun(stack, "haproxy")


@pytest.mark.host_independent
def test_a_run_cut_off_before_the_apps_restart_leaves_the_next_run_to_restart_it(stack):
    cut_off_then_rerun(stack, "flaskapp")


# What a TCP client with this source address first receives from the proxy:
# MySQL's greeting (its byte count), or "closed" when HAProxy hangs up at once.
FIRST_BYTES_FROM = ("import socket, sys\n"
                    "source, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
                    "family = socket.AF_INET6 if ':' in address else socket.AF_INET\n"
                    "with socket.socket(family) as sock:\n"
                    "    sock.settimeout(5)\n"
                    "    sock.bind((source, 0))\n"
                    "    try:\n"
                    "        sock.connect((address, port))\n"
                    "        data = sock.recv(1024)\n"
                    "    except ConnectionResetError:\n"
                    "        data = b''\n"
                    "print(len(data) if data else 'closed')\n")
SIX_TO_FOUR_LOOPBACK = "2002:7f00:1::1"  # 127.0.0.1 in 6to4 form


def test_the_mysql_listener_on_ipv6_admits_only_the_listed_sources(stack):
    """Bound to `::`, the listener takes IPv4 and IPv6 clients. Its clients on
    one host are 127.0.0.1: an IPv4 client from there gets MySQL's greeting;
    IPv6 clients from ::1 and from 127.0.0.1's 6to4 form, which an IPv4 pattern
    would also match, are refused as they connect."""
    def first_bytes(source, address):
        return stack.host.check_output("python3 -c %s %s %s %s", FIRST_BYTES_FROM, source, address, str(PROXY_PORT))

    stack.host.check_output("ip -6 address replace %s/128 dev lo", SIX_TO_FOUR_LOOPBACK)
    try:
        with stack.reconfigured("--tags", "haproxy", haproxy_bind_address="::"):
            assert "bind :::%s" % PROXY_PORT in stack.host.file(HAPROXY_CONFIG).content_string
            assert first_bytes("127.0.0.1", "127.0.0.1").isdigit()
            assert first_bytes("::1", "::1") == "closed"
            assert first_bytes(SIX_TO_FOUR_LOOPBACK, "::1") == "closed"
            assert stack.http("/todos").status == 200
    finally:
        stack.host.run("ip -6 address del %s/128 dev lo", SIX_TO_FOUR_LOOPBACK)
