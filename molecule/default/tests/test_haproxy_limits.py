"""HAProxy's limits shape what MySQL sees, and operators change them by
rerunning the playbook on a live host: proven under real concurrency, through
gunicorn, HAProxy and MySQL, with HAProxy's own counters."""
import json
import math
import pathlib
import threading
import time

import pytest
from conftest import (APP_PORTS, HAPROXY_CONFIG, STATS_SOCKET, app_sql_run, changed_tasks,
                      failure_message, failure_text, haproxy_stats, http_get, main_pid_of, mysql_unit,
                      rerun_on, root_sql_run)

LOAD_SCRIPT = (pathlib.Path(__file__).parent / "concurrent_sleeps.py").read_text()
SLEEP_SECONDS = 2
# flaskapp_db_pool_size: connections each app instance keeps open when idle.
POOL_SIZE = 1
HAPROXY_ONLY = ["haproxy : Write haproxy.cfg", "haproxy : Reload HAProxy"]


def fire_concurrent_sleeps(host, requests):
    """Run concurrent_sleeps.py on the host: timings are taken there, not through Ansible."""
    out = host.check_output("python3 -c %s %s %s %s %s %s %s", LOAD_SCRIPT, str(requests), str(SLEEP_SECONDS),
                            ",".join(map(str, APP_PORTS)), "haproxy_user", STATS_SOCKET, "msyql/mysql1")
    return json.loads(out)


@pytest.mark.parametrize("maxconn, requests", [(10, 20), (3, 9)])
def test_server_maxconn_caps_mysql_sessions_and_queues_the_rest(host, maxconn, requests):
    if maxconn != 10:
        result = rerun_on(host, "--tags", "haproxy", haproxy_server_maxconn=maxconn)
        assert result.returncode == 0, failure_text(result)
    try:
        # Pooled connections opened before a reload stay with the old HAProxy
        # process, under its old limits, until they close: start from fresh pools.
        host.check_output("systemctl restart " + " ".join(f"flaskapp@{port}" for port in APP_PORTS))
        # A first request per instance opens its pooled connection and lets
        # SQLAlchemy initialise, which it does once, holding back other connects.
        for port in APP_PORTS:
            assert http_get(host, "/todos", port).status == 200
        observed = fire_concurrent_sleeps(host, requests)
    finally:
        if maxconn != 10:
            restored = rerun_on(host, "--tags", "haproxy")
            assert restored.returncode == 0, failure_text(restored)
    # HAProxy in TCP mode counts connections, not queries. The first round runs
    # maxconn queries, among them one on each instance's pooled connection. When
    # it ends, those pooled connections go back to their pools still open and
    # keep their server slots, while the other requests wait in HAProxy's queue
    # on connections of their own: later rounds get maxconn - pooled slots.
    pooled = len(APP_PORTS) * POOL_SIZE
    rounds = 1 + math.ceil((requests - maxconn) / (maxconn - pooled))
    print(f"\n[{host.backend.get_hostname()}] server maxconn {maxconn}: {requests} concurrent "
          f"/sleep/{SLEEP_SECONDS} over ports {APP_PORTS} -> at most {observed['max_mysql_sleeps']} "
          f"SELECT SLEEP at once in MySQL; HAProxy max sessions {observed['haproxy_smax']} "
          f"(limit {observed['haproxy_slim']}), max queued {observed['haproxy_qmax']}; "
          f"{observed['elapsed']:.2f}s = {rounds} rounds of {SLEEP_SECONDS}s ({pooled} idle pooled "
          f"connections hold slots after the first; without them "
          f"{math.ceil(requests / maxconn)} rounds); statuses {sorted(set(observed['statuses']))}")
    assert observed["statuses"] == [200] * requests
    assert observed["max_mysql_sleeps"] == maxconn
    assert (observed["haproxy_slim"], observed["haproxy_smax"]) == (maxconn, maxconn)
    assert observed["haproxy_qmax"] == requests - maxconn
    assert rounds * SLEEP_SECONDS <= observed["elapsed"] < rounds * SLEEP_SECONDS + 1.5


@pytest.fixture(scope="module")
def live_reconfigure(host):
    """Rerun with a new server maxconn while an HTTP request and a mysql client
    session run through HAProxy, then rerun with the defaults again."""
    units = [mysql_unit(host), "haproxy", *(f"flaskapp@{port}" for port in APP_PORTS)]
    record = {"pids_before": {unit: main_pid_of(host, unit) for unit in units},
              "config_before": host.file(HAPROXY_CONFIG).content_string}
    # Long enough to outlast the rerun: the test checks that they did.
    session_seconds = 45

    def http_session():
        record["http"] = http_get(host, f"/sleep/{session_seconds}", APP_PORTS[0])
        record["http_end"] = time.monotonic()

    def sql_session():
        record["sql"] = app_sql_run(host, f"SELECT SLEEP({session_seconds}) AS slept, 'finished' AS state")
        record["sql_end"] = time.monotonic()

    sessions = [threading.Thread(target=http_session), threading.Thread(target=sql_session)]
    for session in sessions:
        session.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        running = root_sql_run(host, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                     "WHERE USER = 'haproxy_user' AND INFO LIKE 'SELECT SLEEP%'")
        if running == "2":
            break
    record["rerun"] = rerun_on(host, "--tags", "haproxy", haproxy_server_maxconn=5)
    record["rerun_end"] = time.monotonic()
    record["config_during"] = host.file(HAPROXY_CONFIG).content_string
    record["pids_after"] = {unit: main_pid_of(host, unit) for unit in units}
    for session in sessions:
        session.join()
    record["restore"] = rerun_on(host, "--tags", "haproxy")
    record["config_after"] = host.file(HAPROXY_CONFIG).content_string
    return record


def test_rerun_with_a_new_limit_changes_only_the_config_and_reloads(live_reconfigure):
    rerun = live_reconfigure["rerun"]
    assert rerun.returncode == 0, failure_text(rerun)
    assert changed_tasks(rerun.stdout) == HAPROXY_ONLY, failure_text(rerun)
    assert "server mysql1 127.0.0.1:3306 maxconn 5 check inter 2s\n" in live_reconfigure["config_during"]


def test_rerun_leaves_mysql_gunicorn_and_the_haproxy_master_running(live_reconfigure):
    # Same PIDs: nothing was restarted; HAProxy's master reloads in place.
    assert live_reconfigure["pids_after"] == live_reconfigure["pids_before"]


def test_sessions_open_through_haproxy_survive_the_reload(live_reconfigure):
    assert live_reconfigure["http_end"] > live_reconfigure["rerun_end"], "the HTTP request ended before the reload"
    assert live_reconfigure["sql_end"] > live_reconfigure["rerun_end"], "the SQL session ended before the reload"
    assert live_reconfigure["http"].status == 200
    assert live_reconfigure["http"].json() == {"slept": 45}
    assert live_reconfigure["sql"].rc == 0, live_reconfigure["sql"].stderr
    assert live_reconfigure["sql"].stdout.split() == ["0", "finished"]


def test_rerun_with_defaults_restores_the_original_file(live_reconfigure):
    restore = live_reconfigure["restore"]
    assert restore.returncode == 0, failure_text(restore)
    assert changed_tasks(restore.stdout) == HAPROXY_ONLY, failure_text(restore)
    assert live_reconfigure["config_after"] == live_reconfigure["config_before"]


def test_config_haproxy_rejects_is_never_applied(host):
    config = host.file(HAPROXY_CONFIG).content_string
    pid = main_pid_of(host, "haproxy")
    result = rerun_on(host, "--tags", "haproxy", haproxy_bind_address="256.0.0.1")
    assert result.returncode != 0, failure_text(result)
    # HAProxy's own verdict, from `haproxy -c`, is in the failure.
    message = failure_message(result)
    assert "[ALERT]" in message and "256.0.0.1" in message, failure_text(result)
    assert "Reload HAProxy" not in result.stdout
    assert host.file(HAPROXY_CONFIG).content_string == config
    assert main_pid_of(host, "haproxy") == pid
    assert http_get(host, "/todos").status == 200


def test_stats_socket_shows_connections_and_queue(host):
    stats = haproxy_stats(host)
    server = stats[("msyql", "mysql1")]
    assert (server["status"], server["slim"], server["qcur"]) == ("UP", "10", "0")
    assert {"scur", "smax", "qmax"} <= server.keys()
    socket_file = host.file(STATS_SOCKET)
    assert socket_file.is_socket
    assert (socket_file.user, socket_file.group, socket_file.mode) == ("root", "haproxy", 0o660)


def test_stats_page_serves_on_loopback_when_enabled(host):
    result = rerun_on(host, "--tags", "haproxy", haproxy_stats_page_enabled="true")
    try:
        assert result.returncode == 0, failure_text(result)
        assert host.socket("tcp://127.0.0.1:8404").is_listening
        assert not host.socket("tcp://0.0.0.0:8404").is_listening
        page = host.check_output("curl -sS -w '\\n%%{http_code}' %s", "http://127.0.0.1:8404/;csv")
        assert page.endswith("\n200")
        assert "msyql,mysql1," in page
    finally:
        restored = rerun_on(host, "--tags", "haproxy")
        assert restored.returncode == 0, failure_text(restored)
    assert not host.socket("tcp://127.0.0.1:8404").is_listening
