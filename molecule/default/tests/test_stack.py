"""The single-host stack, proven through its real parts: systemd, HAProxy,
MySQL and HTTP through gunicorn."""
import sys
import threading
import time

import pytest
from conftest import APP_ENV_FILE, APP_PORTS, PROJECT, app_connection_tls, changed_tasks, failure_text, recap

ROLE = PROJECT / "roles" / "flaskapp"
sys.path.insert(0, str(ROLE / "filter_plugins"))
from requirements import pins_for_python  # noqa: E402

EXPECTED_TODOS = {
    "1": {"item": "task1", "status": "pending"},
    "2": {"item": "task2", "status": "done"},
}


def test_services_are_running_and_enabled(host, mysql_service):
    for name in (mysql_service, "haproxy", *(f"flaskapp@{port}" for port in APP_PORTS)):
        service = host.service(name)
        assert service.is_running, name
        assert service.is_enabled, name


@pytest.mark.parametrize("port", [3306, 5555, *APP_PORTS])
def test_port_listens_on_loopback_only(host, port):
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://:::{port}").is_listening


def test_haproxy_accepts_the_deployed_config(host):
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0


def test_haproxy_config_is_the_layer4_listener_of_the_original(host):
    config = {line.strip() for line in host.file("/etc/haproxy/haproxy.cfg").content_string.splitlines()}
    for line in ("maxconn 100", "stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners",
                 "timeout connect 5s", "timeout client 300s", "timeout server 300s",
                 "listen msyql", "bind 127.0.0.1:5555", "mode tcp", "option srvtcpka",
                 "balance roundrobin", "timeout queue 60s",
                 "server mysql1 127.0.0.1:3306 maxconn 10 check inter 2s"):
        assert line in config, line


def test_root_of_each_instance_says_welcome(http):
    for port in APP_PORTS:
        response = http("/", port)
        assert (response.status, response.body) == (200, "Welcome!\n"), port


def test_todos_come_through_each_instance(http):
    for port in APP_PORTS:
        response = http("/todos", port)
        assert response.status == 200, port
        assert response.json() == EXPECTED_TODOS, port


def test_sleep_runs_in_mysql_for_about_the_asked_time(http):
    response = http("/sleep/1")
    assert response.status == 200
    assert response.json() == {"slept": 1}
    assert 0.9 <= response.seconds < 2.5, response.seconds


@pytest.mark.parametrize("seconds", ["abc", "-1", "1e3", "nan", "100000"])
def test_sleep_refuses_what_is_not_a_bounded_number(http, seconds):
    response = http(f"/sleep/{seconds}")
    assert response.status == 400
    assert "error" in response.json()


def test_app_user_reads_todos_through_haproxy(app_sql):
    rows = app_sql("SELECT id, item, status FROM test.todos ORDER BY id")
    assert rows.splitlines() == ["1\ttask1\tpending", "2\ttask2\tdone"]


def test_processlist_shows_the_apps_sleep_from_the_app_user(host, http, root_sql):
    sleeper = threading.Thread(target=http, args=("/sleep/3", 8001))
    sleeper.start()
    try:
        seen = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and not seen:
            seen = [row for row in root_sql("SHOW FULL PROCESSLIST").splitlines()
                    if "\thaproxy_user\t" in row and "SELECT SLEEP" in row]
        assert seen, "no SELECT SLEEP from haproxy_user in SHOW PROCESSLIST"
    finally:
        sleeper.join()


def test_app_skips_tls_when_the_whole_path_to_mysql_is_this_host(host):
    # PyMySQL 1.2 would otherwise build a TLS context for every new connection.
    assert "FLASKAPP_DB_TLS=disabled" in host.file(APP_ENV_FILE).content_string
    _, tries_tls = app_connection_tls(host)
    assert not tries_tls


def test_seeding_never_duplicates_rows(root_sql):
    # Verify runs after converge and the idempotence run: the seed ran twice.
    assert root_sql("SELECT COUNT(*) FROM test.todos").strip() == "2"


def test_virtualenv_holds_the_pins_for_the_hosts_python(host):
    python = host.check_output("/opt/flaskapp/venv/bin/python -c %s",
                               "import platform; print(platform.python_version())")
    expected = pins_for_python((ROLE / "files" / "requirements.txt").read_text(), python)
    installed = {line.lower() for line in host.check_output("/opt/flaskapp/venv/bin/pip freeze").splitlines()}
    assert len(expected) == 6
    for pin in expected:
        assert pin.lower() in installed, pin


def test_check_mode_on_the_converged_host_reports_no_changes(host, rerun):
    result = rerun("--check", "--diff")
    assert result.returncode == 0, failure_text(result)
    assert recap(result.stdout, host.backend.get_hostname())["changed"] == 0, failure_text(result)


def test_rerun_keeps_rows_users_changed(root_sql, rerun):
    root_sql("UPDATE test.todos SET status = 'changed by a user' WHERE id = 1")
    try:
        result = rerun("--tags", "mysql")
        assert result.returncode == 0, failure_text(result)
        assert changed_tasks(result.stdout) == [], failure_text(result)
        assert root_sql("SELECT status FROM test.todos WHERE id = 1") == "changed by a user"
        assert root_sql("SELECT COUNT(*) FROM test.todos") == "2"
    finally:
        root_sql("UPDATE test.todos SET status = 'pending' WHERE id = 1")


def test_a_changed_app_file_is_restored_and_restarts_only_the_app(host, http, rerun, main_pid, mysql_service):
    pids = {unit: main_pid(unit) for unit in (mysql_service, "haproxy", "flaskapp@8000", "flaskapp@8001")}
    host.check_output("echo '# local edit' >> /opt/flaskapp/app/app.py")
    result = rerun("--tags", "flaskapp")
    assert result.returncode == 0, failure_text(result)
    assert changed_tasks(result.stdout) == ["flaskapp : Copy the app", "flaskapp : Restart the app"], failure_text(result)
    assert "# local edit" not in host.file("/opt/flaskapp/app/app.py").content_string
    for unit, pid in pids.items():
        if unit.startswith("flaskapp@"):
            assert main_pid(unit) != pid, unit
        else:
            assert main_pid(unit) == pid, unit
    for port in APP_PORTS:
        assert http("/todos", port).status == 200
