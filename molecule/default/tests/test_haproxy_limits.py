"""HAProxy's limits shape what MySQL sees, and operators change them by
rerunning the playbook on a live host: proven under real concurrency, through
gunicorn, HAProxy and MySQL, with HAProxy's own counters."""
import contextlib
import math
import pathlib
import threading
import time

import pytest
from flaskstack_testlib import (APP_PORTS, DB_NAME, DB_USER, DEFAULTS, HAPROXY_CONFIG, HAPROXY_ONLY, LISTEN_NAME, MYSQL_PORT,
                                POOL_SIZE, SEEDED_TODOS, SERVER_MAXCONN, STATS_SOCKET, changed_tasks, machine_lock,
                                failure_message, failure_text, run_script, timing_window, wait_for)

LOAD_SCRIPT = pathlib.Path(__file__).parent / "concurrent_sleeps.py"
STATS_PAGE_PORT = DEFAULTS["haproxy"]["haproxy_stats_page_port"]
SLEEP_SECONDS = 2
# The app account's queries of the todos table, waiting for a table lock.
WAITING_ON_TODOS = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    f"WHERE USER = '{DB_USER}' AND INFO LIKE 'SELECT%todos%' AND STATE LIKE '%lock%'")


def fire_concurrent_sleeps(stack, requests):
    """Run concurrent_sleeps.py on the host: timings are taken there, not through Ansible."""
    return run_script(stack.host, LOAD_SCRIPT, requests, SLEEP_SECONDS, ",".join(map(str, APP_PORTS)), DB_USER,
                      STATS_SOCKET, f"{LISTEN_NAME}/mysql1")


def measure_concurrent_sleeps(stack, requests):
    # Pooled connections opened before a reload stay with the old HAProxy
    # process, under its old limits, until they close: start from fresh pools.
    stack.host.check_output("systemctl restart " + " ".join(f"flaskapp@{port}" for port in APP_PORTS))
    # A first request per instance opens its pooled connection and lets
    # SQLAlchemy initialise, which it does once, holding back other connects.
    for port in APP_PORTS:
        assert stack.http("/todos", port).status == 200
    with timing_window():
        return fire_concurrent_sleeps(stack, requests)


LOWERED_MAXCONN, LOWERED_REQUESTS = 3, 9


def assert_limit_held(stack, observe, maxconn, requests, observed):
    # HAProxy in TCP mode counts connections, not queries. The first round runs
    # maxconn queries, among them one on each instance's pooled connection. When
    # it ends, those pooled connections go back to their pools still open and
    # keep their server slots, while the other requests wait in HAProxy's queue
    # on connections of their own: later rounds get maxconn - pooled slots.
    pooled = len(APP_PORTS) * POOL_SIZE
    rounds = 1 + math.ceil((requests - maxconn) / (maxconn - pooled))
    observe(f"[{stack.name}] server maxconn {maxconn}: {requests} concurrent "
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


def test_server_maxconn_caps_mysql_sessions_and_queues_the_rest(stack, observe):
    requests = 2 * SERVER_MAXCONN
    assert_limit_held(stack, observe, SERVER_MAXCONN, requests, measure_concurrent_sleeps(stack, requests))




@pytest.fixture(scope="module")
def live_reconfigure(stack):
    """One rerun, on a live host, lowers the server maxconn and turns the stats
    page on (both HAProxy settings: one reload covers them), while an HTTP
    request and a mysql client session are open through HAProxy; then the
    lowered limit and the page are measured; then a rerun with the inventory's
    values restores both.

    Both sessions wait in MySQL on a table lock that root holds, so they stay
    open however long a loaded machine makes the rerun; once it is over and
    both are seen still waiting, root lets go and both complete on the
    connections they had before the reload (the same on MySQL and MariaDB)."""
    record = {"pids_before": stack.unit_pids(), "config_before": stack.host.file(HAPROXY_CONFIG).content_string,
              "observed": None}

    def http_session():
        record["http"] = stack.http("/todos", APP_PORTS[0])
        record["http_end"] = time.monotonic()

    def sql_session():
        record["sql"] = stack.app_sql_result(f"SELECT COUNT(*) AS rows_read, 'finished' AS state FROM {DB_NAME}.todos")
        record["sql_end"] = time.monotonic()

    sessions = [threading.Thread(target=http_session), threading.Thread(target=sql_session)]
    with contextlib.ExitStack() as lowered:
        # Held across the sessions and the rerun: the rerun starts at once, not
        # behind another worker's measured window.
        with machine_lock(exclusive=False), stack.table_locked(f"{DB_NAME}.todos") as release:
            for session in sessions:
                session.start()
            record["sessions_waiting_after"] = wait_for(lambda: stack.root_sql(WAITING_ON_TODOS) == "2", 15,
                                                        interval=0.2)
            change = lowered.enter_context(stack.reconfigured(
                "--tags", "haproxy", expect_success=False, haproxy_server_maxconn=LOWERED_MAXCONN,
                haproxy_stats_page_enabled="true"))
            record["rerun_end"] = time.monotonic()
            record["waiting_after_rerun"] = stack.root_sql(WAITING_ON_TODOS)
            release()
            record["config_during"] = stack.host.file(HAPROXY_CONFIG).content_string
            record["pids_after"] = stack.unit_pids()
            for session in sessions:
                session.join()
        # The measured window outside the shared lock, so that it is exclusive.
        if change.result.returncode == 0:
            record["observed"] = measure_concurrent_sleeps(stack, LOWERED_REQUESTS)
            record["stats_page_addresses"] = stack.listening_addresses(STATS_PAGE_PORT)
            record["stats_page"] = stack.host.check_output("curl -sS -w '\\n%%{http_code}' %s",
                                                           f"http://127.0.0.1:{STATS_PAGE_PORT}/;csv")
    # Leaving `lowered` reran the playbook with the inventory's values. The
    # reload's old worker closes its listeners as it stops, a moment after.
    record["stats_page_gone_after"] = wait_for(lambda: not stack.listening_addresses(STATS_PAGE_PORT), 5,
                                               interval=0.1)
    record["rerun"], record["restore"] = change.result, change.restored
    record["config_after"] = stack.host.file(HAPROXY_CONFIG).content_string
    return record


def test_rerun_with_a_new_limit_changes_only_the_config_and_reloads(live_reconfigure):
    rerun = live_reconfigure["rerun"]
    assert rerun.returncode == 0, failure_text(rerun)
    assert changed_tasks(rerun.stdout) == HAPROXY_ONLY, failure_text(rerun)
    assert f"server mysql1 127.0.0.1:{MYSQL_PORT} maxconn {LOWERED_MAXCONN} check inter 2s\n" in \
        live_reconfigure["config_during"]


def test_a_lowered_server_maxconn_caps_mysql_sessions_after_a_rerun(stack, observe, live_reconfigure):
    assert live_reconfigure["observed"] is not None, failure_text(live_reconfigure["rerun"])
    assert_limit_held(stack, observe, LOWERED_MAXCONN, LOWERED_REQUESTS, live_reconfigure["observed"])


def test_rerun_leaves_mysql_gunicorn_and_the_haproxy_master_running(live_reconfigure):
    # Same PIDs: nothing was restarted; HAProxy's master reloads in place.
    assert live_reconfigure["pids_after"] == live_reconfigure["pids_before"]


def test_sessions_open_through_haproxy_survive_the_reload(live_reconfigure):
    # Both were waiting in MySQL before the rerun began, and still were once it was over.
    assert live_reconfigure["sessions_waiting_after"] is not None, "the sessions never reached MySQL"
    assert live_reconfigure["waiting_after_rerun"] == "2", "a session ended before the rerun did"
    assert live_reconfigure["http_end"] > live_reconfigure["rerun_end"]
    assert live_reconfigure["sql_end"] > live_reconfigure["rerun_end"]
    # Their connections carried them to the end: the rows came back to both.
    assert live_reconfigure["http"].status == 200
    assert live_reconfigure["http"].json() == SEEDED_TODOS
    assert live_reconfigure["sql"].rc == 0, live_reconfigure["sql"].stderr
    assert live_reconfigure["sql"].stdout.split() == [str(len(SEEDED_TODOS)), "finished"]


def test_rerun_with_defaults_restores_the_original_file(live_reconfigure):
    restore = live_reconfigure["restore"]
    assert changed_tasks(restore.stdout) == HAPROXY_ONLY, failure_text(restore)
    assert live_reconfigure["config_after"] == live_reconfigure["config_before"]


def test_config_haproxy_rejects_is_never_applied(stack):
    config = stack.host.file(HAPROXY_CONFIG).content_string
    pid = stack.main_pid("haproxy")
    result = stack.rerun("--tags", "haproxy", haproxy_bind_address="256.0.0.1")
    assert result.returncode != 0, failure_text(result)
    # HAProxy's own verdict, from `haproxy -c`, is in the failure.
    message = failure_message(result)
    assert "[ALERT]" in message and "256.0.0.1" in message, failure_text(result)
    assert "Reload HAProxy" not in result.stdout
    assert stack.host.file(HAPROXY_CONFIG).content_string == config
    assert stack.main_pid("haproxy") == pid
    assert stack.http("/todos").status == 200


def test_stats_socket_shows_connections_and_queue(stack):
    server = stack.server("mysql1")
    assert (server["status"], server["slim"], server["qcur"]) == ("UP", str(SERVER_MAXCONN), "0")
    assert {"scur", "smax", "qmax"} <= server.keys()
    socket_file = stack.host.file(STATS_SOCKET)
    assert socket_file.is_socket
    assert (socket_file.user, socket_file.group, socket_file.mode) == ("root", "haproxy", 0o660)


def test_stats_page_serves_on_loopback_when_enabled(live_reconfigure):
    assert live_reconfigure["observed"] is not None, failure_text(live_reconfigure["rerun"])
    assert live_reconfigure["stats_page_addresses"] == {"127.0.0.1"}
    page = live_reconfigure["stats_page"]
    assert page.endswith("\n200")
    assert f"{LISTEN_NAME},mysql1," in page
    assert live_reconfigure["stats_page_gone_after"] is not None, "still served 5 s after the restoring rerun"
