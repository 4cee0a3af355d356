"""HAProxy's limits shape what MySQL sees, and operators change them by
rerunning the playbook on a live host: proven under real concurrency, through
gunicorn, HAProxy and MySQL, with HAProxy's own counters."""
import contextlib
import json
import math
import os
import pathlib
import re
import threading
import time

import pytest
from flaskstack_testlib import (APP_PORTS, CHECK_PORT, DB_NAME, DB_USER, DEFAULTS, HAPROXY_AND_APP_RECONNECT,
                                HAPROXY_CONFIG, LISTEN_NAME, MYSQL_PORT, SERVER_MAXCONN, STATS_SOCKET,
                                changed_tasks, failure_message, failure_text, run_script,
                                task_start_times, timing_window, wait_for)

# The role's local fact (what HAProxy was built with), and the task that asks
# haproxy -vv where the fact is missing.
HAPROXY_BUILD_FACT = "/etc/ansible/facts.d/flaskstack_haproxy.fact"
BUILD_QUESTION = "haproxy : Find out whether HAProxy was built with its Prometheus exporter"

# HAProxy's reload and limits, one host per scenario: the default scenario's
# first (Debian 12, the oldest HAProxy here); the Oracle MySQL scenario's
# Debian unstable has the newest.
pytestmark = pytest.mark.platform_independent

LOAD_SCRIPT = pathlib.Path(__file__).parent / "concurrent_sleeps.py"
STATS_PAGE_PORT = DEFAULTS["haproxy"]["haproxy_stats_page_port"]
STATS_PAGE_USER = DEFAULTS["haproxy"]["haproxy_stats_page_user"]
# A throwaway password for the page the test turns on (the restoring rerun turns it off).
STATS_PAGE_TEST_PASSWORD = "stats-" + os.urandom(8).hex()
SLEEP_SECONDS = 2
# The app account's queries of the todos table, waiting for a table lock.
# A table of the tests' own in the app's database (the account may read it),
# locked by root so that a session through HAProxy stays open in MySQL for as
# long as a loaded machine makes a rerun; the app's todos stay free for traffic.
PROBE_TABLE = f"{DB_NAME}.flaskstack_reload_probe"
WAITING_ON_PROBE = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    f"WHERE USER = '{DB_USER}' AND INFO LIKE 'SELECT%flaskstack_reload_probe%' AND STATE LIKE '%lock%'")


def fire_concurrent_sleeps(stack, requests):
    """Run concurrent_sleeps.py on the host: timings are taken there, not through Ansible."""
    return run_script(stack.host, LOAD_SCRIPT, requests, SLEEP_SECONDS, ",".join(map(str, APP_PORTS)), DB_USER,
                      STATS_SOCKET, f"{LISTEN_NAME}/mysql1")


def measure_concurrent_sleeps(stack, requests):
    """A burst of concurrent /sleep/2 on the running app, not restarted: its
    pooled connections must already be under the limits in force."""
    # A first request per instance makes sure its pooled connection is open
    # (SQLAlchemy initialises once, holding back other connects).
    for port in APP_PORTS:
        assert stack.http("/todos", port).status == 200
    with timing_window():
        return fire_concurrent_sleeps(stack, requests)


LOWERED_MAXCONN, LOWERED_REQUESTS = 3, 9
# While a limit changes: clients looping on /sleep/0.5 (at the lowered limit
# they queue about 2 s), beside the steady /todos reads.
SLEEP_STREAMS, STEADY_SLEEP = 12, "/sleep/0.5"
# After the reload, MySQL's sessions from the proxy are within the new limit
# within this many seconds. A request during the change waits at most
# STALL_MARGIN longer than the slowest at the new limit in steady state, which
# the traffic goes on to measure for STEADY_SECONDS after the bound.
LIMIT_IN_FORCE_WITHIN, STALL_MARGIN, STEADY_SECONDS = 10, 1.5, 10
# No request under that load waits longer than this, then or in steady state
# (the queue's own wait is about 2 s: 12 clients, 3 slots, 0.5 s each).
LONGEST_WAIT = 5
RELOAD = "RUNNING HANDLER [haproxy : Reload HAProxy]"


def hard_stop_seconds(config):
    """The deployed bound for an old worker after a reload. The scenarios set a
    short one (molecule.yml) to keep `make test` in its budget; the default is
    the app's longest query plus 10s (70s)."""
    match = re.search(r"^\s*hard-stop-after (\d+)s$", config, re.MULTILINE)
    assert match, "no hard-stop-after in haproxy.cfg"
    return int(match.group(1))


def drain(stack, since, bound):
    """Seconds from `since` until HAProxy has no old worker left (None if it
    still has one well past the bound)."""
    if wait_for(lambda: stack.haproxy_workers()[1] == 0, bound + 30, interval=1) is None:
        return None
    return time.monotonic() - since


def assert_limit_held(stack, observe, maxconn, requests, observed):
    # HAProxy in TCP mode counts connections, not queries: maxconn queries run,
    # the rest wait in its queue. A connection whose query ends while its
    # worker's other requests wait in that queue closes (files/app.py), so its
    # slot goes to the longest waiter and every round runs maxconn queries. A
    # worker with nothing waiting keeps its pooled connection, and the slot, for
    # its next request: on a loaded machine that can cost one round more.
    rounds = math.ceil(requests / maxconn)
    observe(f"[{stack.name}] server maxconn {maxconn}: {requests} concurrent "
            f"/sleep/{SLEEP_SECONDS} over ports {APP_PORTS} -> at most {observed['max_mysql_sleeps']} "
            f"SELECT SLEEP at once in MySQL; HAProxy max sessions {observed['haproxy_smax']} "
            f"(limit {observed['haproxy_slim']}), max queued {observed['haproxy_qmax']}; "
            f"{observed['elapsed']:.2f}s = {rounds} rounds of {SLEEP_SECONDS}s at the limit; "
            f"statuses {sorted(set(observed['statuses']))}")
    assert observed["statuses"] == [200] * requests
    assert observed["max_mysql_sleeps"] == maxconn
    assert (observed["haproxy_slim"], observed["haproxy_smax"]) == (maxconn, maxconn)
    assert observed["haproxy_qmax"] == requests - maxconn
    assert rounds * SLEEP_SECONDS <= observed["elapsed"] < (rounds + 1) * SLEEP_SECONDS + 1.5


@pytest.fixture(scope="module")
def live_reconfigure(stack):
    """A rerun on a live host lowers the server maxconn and turns the stats page
    on (both HAProxy settings: one reload covers them), under steady /todos
    reads and clients looping on /sleep/0.5, while the app's sessions in MySQL
    are counted, and while a mysql client session is open through HAProxy;
    once the old worker is gone, the lowered limit and the page are measured,
    the app never restarted. Then the rerun with the inventory's values raises
    the limit again under steady /todos reads, and it is measured the same way.

    The session waits in MySQL on a lock that root holds on a table of the
    tests' own, so it stays open however long a loaded machine makes the rerun;
    once it is over and the session is seen still waiting, root lets go and it
    completes on the connection it had before the reload (the same on MySQL and
    MariaDB)."""
    config_before = stack.host.file(HAPROXY_CONFIG).content_string
    record = {"pids_before": stack.unit_pids(), "config_before": config_before,
              "hard_stop": hard_stop_seconds(config_before), "observed": None, "raised": None}

    def sql_session():
        record["sql"] = stack.app_sql_result(f"SELECT COUNT(*) AS rows_read, 'finished' AS state FROM {PROBE_TABLE}")
        record["sql_end"] = time.monotonic()

    rerun_over = threading.Event()

    def let_go_after_the_reload(release):
        """Once HAProxy has an old worker (the rerun's reload), root lets the
        session, still waiting there, go: it completes on the connection it had.
        Not at the rerun's end: what the run does after the reload can outlast
        the scenarios' short hard-stop-after on a loaded machine."""
        master = str(stack.main_pid("haproxy"))
        workers = lambda: len(stack.host.check_output("ps --ppid %s -o pid=", master).split())  # noqa: E731
        wait_for(lambda: rerun_over.is_set() or workers() >= 2, 600, interval=0.2)
        record["reload_seen"] = workers() >= 2
        record["reload_seen_at"] = time.monotonic()
        record["waiting_after_reload"] = stack.root_sql(WAITING_ON_PROBE)
        # The session holds the old worker: flaskstack-status shows it draining.
        record["workers_after_reload"] = stack.haproxy_workers()
        release()

    session = threading.Thread(target=sql_session)
    stack.root_sql(f"DROP TABLE IF EXISTS {PROBE_TABLE}; CREATE TABLE {PROBE_TABLE} (id INT PRIMARY KEY); "
                   f"INSERT INTO {PROBE_TABLE} VALUES (1)")
    with contextlib.ExitStack() as lowered:
        lowered.callback(stack.root_sql, f"DROP TABLE IF EXISTS {PROBE_TABLE}")
        # One measured window (how soon the limit holds, how long requests wait,
        # then a burst at the lowered limit) across the traffic, the session, the
        # rerun, the steady state after it and the burst once the traffic stopped:
        # taken first, so that no traffic runs while it waits for the machine, and
        # once, since each wait holds every other scenario's runs back.
        with timing_window():
            with stack.steady_reads() as record["traffic_lowering"], \
                    stack.steady_reads(streams=SLEEP_STREAMS, path=STEADY_SLEEP) as record["sleeps_lowering"], \
                    stack.app_sessions_sampled(excluding=PROBE_TABLE.split(".")[1]) as record["sessions_lowering"]:
                with stack.table_locked(PROBE_TABLE) as release:
                    session.start()
                    record["session_waiting_after"] = wait_for(lambda: stack.root_sql(WAITING_ON_PROBE) == "1", 15,
                                                               interval=0.2)
                    watcher = threading.Thread(target=let_go_after_the_reload, args=(release,))
                    watcher.start()
                    change = lowered.enter_context(stack.reconfigured(
                        "--tags", "haproxy", expect_success=False, haproxy_server_maxconn=LOWERED_MAXCONN,
                        haproxy_stats_page_enabled="true", haproxy_stats_page_password=STATS_PAGE_TEST_PASSWORD))
                    record["rerun_end"] = time.monotonic()
                    rerun_over.set()  # (in case the run never reloaded)
                    watcher.join()
                    record["config_during"] = stack.host.file(HAPROXY_CONFIG).content_string
                    record["pids_after"] = stack.unit_pids()
                    session.join()
                    if change.result.returncode == 0:
                        record["drained_after"] = drain(stack, record["rerun_end"], record["hard_stop"])
                        # The traffic and the count go on past the bound: the steady state at the new limit.
                        record["reload_at"] = task_start_times(change.result.stdout)[RELOAD]
                        while time.time() < record["reload_at"] + LIMIT_IN_FORCE_WITHIN + STEADY_SECONDS:
                            time.sleep(0.2)
            if change.result.returncode == 0:
                # Inside the window: measure_concurrent_sleeps's own is this one.
                record["observed"] = measure_concurrent_sleeps(stack, LOWERED_REQUESTS)
        if change.result.returncode == 0:
            record["stats_page_addresses"] = stack.listening_addresses(STATS_PAGE_PORT)
            page = f"http://127.0.0.1:{STATS_PAGE_PORT}/"
            record["stats_page_anonymous"] = stack.host.check_output("curl -s -o /dev/null -w '%%{http_code}' %s",
                                                                     page + ";csv")
            credentials = f"{STATS_PAGE_USER}:{STATS_PAGE_TEST_PASSWORD}"
            record["stats_page"] = stack.host.check_output("curl -sS -u %s -w '\\n%%{http_code}' %s", credentials,
                                                           page + ";csv")
            record["stats_page_html"] = stack.host.check_output("curl -sS -u %s %s", credentials, page)
            record["haproxy_version"] = stack.host.check_output("haproxy -v").split()[2]
        # Raising it again: the rerun with the inventory's values, under traffic.
        # Steady reads alone: one at a time, each instance's pooled connection
        # serves them all and is never replaced, so it stays with the old worker
        # unless the app moves it.
        with stack.steady_reads() as record["traffic_raising"]:
            lowered.close()
            raise_end = time.monotonic()
            if change.restored.returncode == 0:
                record["raise_drained_after"] = drain(stack, raise_end, record["hard_stop"])
    record["rerun"], record["restore"] = change.result, change.restored
    record["config_after"] = stack.host.file(HAPROXY_CONFIG).content_string
    if change.result.returncode == 0 and change.restored.returncode == 0:
        record["stats_page_gone"] = not stack.listening_addresses(STATS_PAGE_PORT)
        record["raised"] = measure_concurrent_sleeps(stack, 2 * SERVER_MAXCONN)
    return record


def test_rerun_with_a_new_limit_changes_only_the_config_and_reloads(live_reconfigure):
    rerun = live_reconfigure["rerun"]
    assert rerun.returncode == 0, failure_text(rerun)
    assert changed_tasks(rerun.stdout) == HAPROXY_AND_APP_RECONNECT, failure_text(rerun)
    # What HAProxy was built with came from the local fact (fact gathering ran
    # its script): no module run of its own to ask haproxy -vv.
    assert BUILD_QUESTION not in rerun.stdout, failure_text(rerun)
    assert f"server mysql1 127.0.0.1:{MYSQL_PORT} maxconn {LOWERED_MAXCONN} check port {CHECK_PORT} inter 2s\n" in \
        live_reconfigure["config_during"]


def test_an_old_worker_is_shown_draining_then_gone_within_the_bound(stack, observe, live_reconfigure):
    assert live_reconfigure["rerun"].returncode == 0, failure_text(live_reconfigure["rerun"])
    # Right after the reload, its old worker still holds the open session.
    assert live_reconfigure["workers_after_reload"] == (1, 1)
    drained, raised = live_reconfigure.get("drained_after"), live_reconfigure.get("raise_drained_after")
    bound = live_reconfigure["hard_stop"]
    observe(f"[{stack.name}] hard-stop-after {bound}s under steady traffic: old worker gone "
            f"{drained and round(drained, 1)}s after the lowering rerun (a session held it), "
            f"{raised and round(raised, 1)}s after the raising one")
    # The lowering's old worker keeps the test's open session until the test lets it
    # go, at the latest until the bound after the reload, which the rerun's end follows.
    assert drained is not None and drained <= bound + 10, drained
    # The raising's holds only the app's pooled connections (steady reads, one at a
    # time, never replace them), which the app moves at once: it leaves well before the bound.
    assert raised is not None and raised <= LIMIT_IN_FORCE_WITHIN, raised


def test_no_request_fails_while_a_limit_changes(stack, observe, live_reconfigure):
    for phase in ("traffic_lowering", "traffic_raising"):
        traffic = live_reconfigure.get(phase)
        assert traffic, f"{phase}: no traffic recorded"
        observe(f"[{stack.name}] {phase}: {traffic['requests']} GET /todos in {traffic['seconds']}s, "
                f"failures {traffic['failures']}")
        assert traffic["requests"] >= 20, traffic
        assert traffic["failures"] == [], traffic


def test_a_lowered_limit_is_the_limit_in_mysql_within_seconds(stack, observe, live_reconfigure):
    """The app's sessions in MySQL (idle pooled ones too) are within the new
    limit within LIMIT_IN_FORCE_WITHIN of the reload, not at hard-stop-after.
    (Under this load the app's pools replace most of their connections by
    themselves too; the old worker's quick exit after the raise, where nothing
    replaces them, shows that the app moves them.)"""
    assert live_reconfigure["rerun"].returncode == 0, failure_text(live_reconfigure["rerun"])
    reload_at, samples = live_reconfigure["reload_at"], live_reconfigure["sessions_lowering"]
    before = [sessions for at, sessions in samples if at < reload_at]
    after = [(at - reload_at, sessions) for at, sessions in samples if at >= reload_at]
    over = [since for since, sessions in after if sessions > LOWERED_MAXCONN]
    within = max(over, default=0.0)
    observe(f"[{stack.name}] server maxconn {SERVER_MAXCONN} -> {LOWERED_MAXCONN} under {SLEEP_STREAMS} clients "
            f"looping on {STEADY_SLEEP}: the app's MySQL sessions at most {max(before, default=None)} before the "
            f"reload, at most {max((s for _, s in after), default=None)} after it, within {LOWERED_MAXCONN} "
            f"{within:.1f}s after it (hard-stop-after {live_reconfigure['hard_stop']}s; "
            f"{len(samples)} samples)")
    # The premise: the old limit let more through than the new one.
    assert max(before) > LOWERED_MAXCONN, before
    assert after and after[-1][0] >= LIMIT_IN_FORCE_WITHIN, "the count stopped before the bound"
    assert within <= LIMIT_IN_FORCE_WITHIN, after
    # Meanwhile, the old worker's connections (at most the old limit) and the new one's.
    assert max(sessions for _, sessions in after) <= SERVER_MAXCONN + LOWERED_MAXCONN, after


def test_no_request_fails_or_stalls_while_a_limit_changes(stack, observe, live_reconfigure):
    """No request fails, none sent while a limit changes waits much longer
    than the lowered limit makes one wait in steady state (the queue's own
    wait), and none waits longer than LONGEST_WAIT, then or in steady state."""
    assert live_reconfigure["rerun"].returncode == 0, failure_text(live_reconfigure["rerun"])
    reload_at, lowering = live_reconfigure["reload_at"], live_reconfigure["sleeps_lowering"]
    steady = [seconds for wall, seconds in lowering["timed"] if wall >= reload_at + LIMIT_IN_FORCE_WITHIN]
    changing = [seconds for wall, seconds in lowering["timed"] if reload_at - 1 <= wall < reload_at + LIMIT_IN_FORCE_WITHIN]
    observe(f"[{stack.name}] {SLEEP_STREAMS} clients looping on {STEADY_SLEEP}: at server maxconn {LOWERED_MAXCONN} "
            f"in steady state the slowest took {max(steady, default=None)}s (median "
            f"{sorted(steady)[len(steady) // 2] if steady else None}s, {len(steady)} requests); while it was "
            f"lowered, the slowest of {len(changing)} took {max(changing, default=None)}s; "
            f"failed: {lowering['failures'][:3]}")
    assert lowering["failures"] == []
    assert len(steady) >= 2 * SLEEP_STREAMS, "too few requests in steady state to compare with"
    assert changing and max(changing) <= max(steady) + STALL_MARGIN, (sorted(changing)[-5:], max(steady))
    # A request queued behind connections that never close would wait until its timeout.
    assert max(changing + steady) <= LONGEST_WAIT, (sorted(changing)[-5:], sorted(steady)[-5:])


def test_a_lowered_server_maxconn_caps_mysql_sessions_after_a_rerun(stack, observe, live_reconfigure):
    assert live_reconfigure["observed"] is not None, failure_text(live_reconfigure["rerun"])
    assert_limit_held(stack, observe, LOWERED_MAXCONN, LOWERED_REQUESTS, live_reconfigure["observed"])


def test_the_raised_limit_caps_mysql_sessions_and_queues_the_rest(stack, observe, live_reconfigure):
    assert live_reconfigure["raised"] is not None, failure_text(live_reconfigure["restore"])
    assert_limit_held(stack, observe, SERVER_MAXCONN, 2 * SERVER_MAXCONN, live_reconfigure["raised"])


def test_rerun_leaves_mysql_gunicorn_and_the_haproxy_master_running(live_reconfigure):
    # Same PIDs: nothing was restarted; HAProxy's master reloads in place.
    assert live_reconfigure["pids_after"] == live_reconfigure["pids_before"]


def test_a_session_open_through_haproxy_survives_the_reload(live_reconfigure):
    # It was waiting in MySQL before the rerun began, and still was once HAProxy had reloaded.
    assert live_reconfigure["session_waiting_after"] is not None, "the session never reached MySQL"
    assert live_reconfigure["reload_seen"], "no reload seen"
    assert live_reconfigure["waiting_after_reload"] == "1", "the session ended before the reload"
    assert live_reconfigure["sql_end"] > live_reconfigure["reload_seen_at"]
    # Its connection carried it to the end: the row came back.
    assert live_reconfigure["sql"].rc == 0, live_reconfigure["sql"].stderr
    assert live_reconfigure["sql"].stdout.split() == ["1", "finished"]


def test_rerun_with_defaults_restores_the_original_file(live_reconfigure):
    restore = live_reconfigure["restore"]
    assert changed_tasks(restore.stdout) == HAPROXY_AND_APP_RECONNECT, failure_text(restore)
    assert live_reconfigure["config_after"] == live_reconfigure["config_before"]


def test_config_haproxy_rejects_is_never_applied(stack):
    """Also on a host without the role's local fact (its script deleted): the
    run asks haproxy -vv itself and writes the script again, which then answers
    every fact gathering, as an unprivileged user too."""
    config = stack.host.file(HAPROXY_CONFIG).content_string
    pid = stack.main_pid("haproxy")
    stack.host.check_output("rm %s", HAPROXY_BUILD_FACT)
    # A setting no input check can judge: only HAProxy knows its keywords.
    result = stack.rerun("--tags", "haproxy", haproxy_global_settings=["tune.no-such-setting 1"])
    assert result.returncode != 0, failure_text(result)
    assert f"TASK [{BUILD_QUESTION}]" in result.stdout, failure_text(result)
    assert "haproxy : Let fact gathering report what HAProxy was built with" in changed_tasks(result.stdout)
    version = stack.host.check_output("haproxy -v").split()[2]
    fact = json.loads(stack.host.check_output("runuser -u nobody -- %s", HAPROXY_BUILD_FACT))
    assert fact == {"installed": True, "version": version, "prometheus_exporter": True}
    # HAProxy's own verdict, from `haproxy -c`, is in the failure.
    message = failure_message(result)
    assert "[ALERT]" in message and "tune.no-such-setting" in message, failure_text(result)
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
    # Credentials or nothing, and no version for whoever gets in.
    assert live_reconfigure["stats_page_anonymous"] == "401"
    page = live_reconfigure["stats_page"]
    assert page.endswith("\n200")
    assert f"{LISTEN_NAME},mysql1," in page
    assert "Statistics Report" in live_reconfigure["stats_page_html"]
    assert live_reconfigure["haproxy_version"] not in live_reconfigure["stats_page_html"]
    # The config holds a hash of the password, and only root and HAProxy's group read it.
    config = live_reconfigure["config_during"]
    assert STATS_PAGE_TEST_PASSWORD not in config
    assert f"user {STATS_PAGE_USER} password $6$" in config
    assert live_reconfigure.get("stats_page_gone"), "still served once the old worker was gone after the next rerun"


WAITING_ON_TODOS = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    f"WHERE USER = '{DB_USER}' AND INFO LIKE 'SELECT%todos%' AND STATE LIKE '%lock%'")


# The app's own code (its retry) and HAProxy's: the same whatever MySQL flavour.
@pytest.mark.host_independent
def test_a_read_cut_off_by_the_reload_bound_is_retried_and_served(stack, observe):
    """A /todos read still running on an old worker's connection when the bound
    stops it: the app retries it once through the new worker and the client
    gets its rows. The read is held by a lock root keeps on the todos table
    until the old worker is gone, then lets go."""
    port = APP_PORTS[0]
    bound = hard_stop_seconds(stack.host.file(HAPROXY_CONFIG).content_string)
    assert stack.http("/todos", port).status == 200  # the worker's pooled connection is open
    since = stack.host.check_output("date %s", "+%Y-%m-%d %H:%M:%S")
    result = {}
    reader = threading.Thread(target=lambda: result.update(response=stack.http("/todos", port)))
    # No timing window: the bound has 30 s of slack, and nothing else on this host runs meanwhile.
    with stack.table_locked(f"{DB_NAME}.todos") as release:
        reader.start()
        try:
            assert wait_for(lambda: stack.root_sql(WAITING_ON_TODOS) == "1", 10, interval=0.2) is not None, \
                "the app's read never waited on the lock"
            stack.host.check_output("systemctl reload haproxy")
            reloaded = time.monotonic()
            # Workers counted as the master's children (flaskstack-status would wait on the locked /todos).
            master = str(stack.main_pid("haproxy"))
            workers = lambda: len(stack.host.check_output("ps --ppid %s -o pid=", master).split())  # noqa: E731
            assert wait_for(lambda: workers() == 2, 10, interval=0.2) is not None, "no old worker after the reload"
            gone_after = wait_for(lambda: workers() == 1, bound + 30, interval=0.5)
            gone_after = gone_after and time.monotonic() - reloaded
            # The read was cut with the old worker; its retry waits on the lock again, on a new connection.
            retried = wait_for(lambda: int(stack.root_sql(WAITING_ON_TODOS)) >= 1, 10, interval=0.2)
        finally:
            release()
            reader.join(60)
    response = result.get("response")
    log = stack.host.check_output("journalctl -u flaskapp@%s --since %s --no-pager -o cat", str(port), since)
    retry_lines = [line for line in log.splitlines() if "connection lost during a read" in line]
    observe(f"[{stack.name}] a /todos read held past the reload bound ({bound}s): old worker gone after "
            f"{gone_after and round(gone_after, 1)}s, client got {response and response.status}; app log: "
            f"{retry_lines[-1].strip() if retry_lines else 'no retry'}")
    assert gone_after is not None, "the old worker outlived its bound"
    assert retried is not None
    assert response is not None and response.status == 200, response and response.body
    assert retry_lines and "retrying once" in retry_lines[-1]
