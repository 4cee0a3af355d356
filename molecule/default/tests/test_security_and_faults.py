"""Bad input is refused, secrets stay out of sight, privileges and exposure are
minimal, and the stack recovers from faults by itself: each proven through the
real stack."""
import json
import os
import pathlib
import subprocess
import tempfile
import urllib.parse

import pytest
from flaskstack_testlib import (APP_ENV_FILE, APP_PORTS, DB_NAME, DB_USER, SEEDED_TODOS, assert_succeeded,
                                changed_tasks, connection_vars, failure_message, failure_text, recap, run_playbook, timing_window,
                                wait_for)

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
    ("flaskapp_ports", [8000, 70000]),
    ("mysql_app_user_hosts", ["10.0.0.%"]),
    ("mysql_flavor", "oracle"),
    ("haproxy_server_limits", {"bad-haproxy_server_limits": {"maxconn": 0}}),
    ("haproxy_client_addresses", []),
]


@pytest.fixture(scope="module")
def bad_value_run(stack, tmp_path_factory):
    """One playbook run over an inventory of aliases of this test host, each in
    every group and each with one bad value: every alias must stop on its own."""
    inventory = tmp_path_factory.mktemp("bad-values") / "hosts.yml"
    # Each alias reaches the test host the way the scenario does (docker, or SSH as a sudo user).
    reach = {"ansible_host": stack.name, **connection_vars(stack.name)}
    aliases = {f"bad-{variable}": {**reach, variable: value} for variable, value in BAD_VALUES}
    inventory.write_text(json.dumps({"all": {
        "hosts": aliases, "children": {tier: {"hosts": {alias: None for alias in aliases}}
                                       for tier in ("mysql", "haproxy", "flaskapp")}}}))
    return run_playbook("--forks", str(len(aliases)), inventory=str(inventory))


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
        (tmp_path / "hosts.yml").write_text(json.dumps({"all": {
            "hosts": {"older": {"ansible_connection": "community.docker.docker", "ansible_host": container}},
            "children": {group: {"hosts": {"older": None}} for group in ("mysql", "haproxy", "flaskapp")}}}))
        result = run_playbook(inventory=str(tmp_path))
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

def deployed_password(stack):
    return stack.host.check_output("set -a; . %s; printf %%s \"$FLASKAPP_DB_PASSWORD\"", APP_ENV_FILE)


@pytest.mark.platform_independent
def test_vaulted_password_converges_and_is_never_printed(stack):
    vaulted = "Vaulted-" + os.urandom(12).hex()
    with tempfile.TemporaryDirectory() as tmp:
        vault_pass, vars_file = pathlib.Path(tmp, "vault-pass"), pathlib.Path(tmp, "vault.yml")
        vault_pass.write_text(os.urandom(16).hex())
        vars_file.write_text(f"vault_flaskstack_db_password: {vaulted}\n")
        subprocess.run(["ansible-vault", "encrypt", "--vault-password-file", str(vault_pass), str(vars_file)],
                       capture_output=True, check=True)
        assert vaulted not in vars_file.read_text()
        # The two roles that use the password; the restore runs them without the
        # vault: back to the generated password.
        with stack.reconfigured("--tags", "mysql,flaskapp", "-v", "--diff", "-e", f"@{vars_file}",
                                "--vault-password-file", str(vault_pass),
                                restore_args=("--tags", "mysql,flaskapp")) as change:
            assert vaulted not in change.result.stdout + change.result.stderr
            assert deployed_password(stack) == vaulted
            for port in APP_PORTS:
                assert stack.http_status("/todos", port) == 200
            assert stack.app_sql(f"SELECT COUNT(*) FROM {DB_NAME}.todos").strip() == str(len(SEEDED_TODOS))
    assert deployed_password(stack) != vaulted
    assert stack.http_status() == 200


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
    for account in (f"'{DB_USER}'@'localhost'", f"'{DB_USER}'@'127.0.0.1'"):
        grants = [line.split(" TO ")[0] for line in stack.root_sql(f"SHOW GRANTS FOR {account}").splitlines()]
        assert grants == ["GRANT USAGE ON *.*", f"GRANT SELECT ON `{DB_NAME}`.*"], (account, grants)
    # No account for any host but HAProxy's.
    assert stack.root_sql(f"SELECT Host FROM mysql.user WHERE User = '{DB_USER}' ORDER BY Host").split() == \
        ["127.0.0.1", "localhost"]


@pytest.mark.platform_independent
def test_the_originals_grant_all_is_opt_in_idempotent_and_reversible(stack):
    def app_reads_mysql_user_table():
        return stack.app_sql_result("SELECT COUNT(*) FROM mysql.user").rc == 0

    assert not app_reads_mysql_user_table()
    with stack.reconfigured("--tags", "mysql", mysql_app_grant_all_privileges="true") as change:
        assert changed_tasks(change.result.stdout) == ["mysql : Grant all privileges, as the original write-up does"]
        assert app_reads_mysql_user_table()
        again = assert_succeeded(stack.rerun("--tags", "mysql", mysql_app_grant_all_privileges="true"))
        assert changed_tasks(again.stdout) == [], failure_text(again)
    assert changed_tasks(change.restored.stdout) == ["mysql : Create the application account"], \
        failure_text(change.restored)
    assert not app_reads_mysql_user_table()


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


# --- Faults, each recovered without rerunning the playbook ---------------------------

def test_killed_gunicorn_master_is_restarted_by_systemd(stack, observe):
    unit, port = f"flaskapp@{APP_PORTS[0]}", APP_PORTS[0]
    pid = stack.main_pid(unit)
    with timing_window():
        stack.host.check_output("kill -9 %s", str(pid))
        recovered = wait_for(lambda: stack.main_pid(unit) not in (0, pid) and stack.http_status("/todos", port) == 200,
                             10)
    observe(f"[{stack.name}] {unit} killed with SIGKILL: answering again after {recovered}s")
    assert recovered is not None, "no answer within 10 s"


def test_app_survives_a_mysql_restart(stack):
    for port in APP_PORTS:
        assert stack.http_status("/todos", port) == 200  # pooled connections are open
    stack.host.check_output("systemctl restart %s", stack.mysql_unit)
    # A restart slower than HAProxy's fall (3 checks, 2 s apart; Oracle MySQL on a
    # loaded machine) gets the server marked DOWN until two checks pass again.
    assert wait_for(lambda: stack.server()["status"] == "UP", 15) is not None, stack.server()
    # Then the pool tests each connection before use and replaces the dead ones.
    for port in APP_PORTS:
        response = stack.http("/todos", port)
        assert response.status == 200, response.body


def outage(stack, unit, marked_down=None, marked_up=None):
    """Stop a unit under the running app and see how the app answers (and, if
    given, how long until HAProxy marks the server down); start it again and see
    how long until every instance answers (and HAProxy marks it up)."""
    record = {}
    with timing_window():
        stack.host.check_output("systemctl stop %s", unit)
        try:
            record["during"] = stack.http("/todos")
            if marked_down:
                record["marked_down_after"] = wait_for(marked_down, 15)
        finally:
            stack.host.check_output("systemctl start %s", unit)
        record["recovered_after"] = wait_for(
            lambda: all(stack.http_status("/todos", port) == 200 for port in APP_PORTS)
            and (marked_up is None or marked_up()), 20)
    return record


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


def test_haproxy_down_gives_a_quick_503_and_the_app_recovers(stack, observe):
    record = outage(stack, "haproxy")
    during = record["during"]
    observe(f"[{stack.name}] HAProxy stopped: /todos {during.status} in {during.seconds:.2f}s; "
          f"all instances 200 again {record['recovered_after']}s after the start")
    assert during.status == 503 and during.json() == {"error": "database unavailable"}
    assert during.seconds < 10
    assert record["recovered_after"] is not None, "no recovery within 20 s of HAProxy's start"
