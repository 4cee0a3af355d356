"""What operators see of the limits at work: HAProxy's and MySQL's Prometheus
metrics, HAProxy's connection log in journald with each connection's time in
the queue, and the app's access log. Proven while connections really queue."""
import re

import pytest
from flaskstack_testlib import APP_ENV_FILE, APP_PORTS, DB_USER, DEFAULTS, LISTEN_NAME, PROXY_PORT, wait_for

HAPROXY_METRICS = f"http://127.0.0.1:{DEFAULTS['haproxy']['haproxy_prometheus_port']}/metrics"
MYSQL_METRICS = f"http://127.0.0.1:{DEFAULTS['mysql']['mysql_exporter_port']}/metrics"
SLEEP_SECONDS = 3
# Sessions beyond the limit, which must wait in HAProxy's queue.
EXCESS = 3
APP_SESSIONS = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{DB_USER}'"
# option tcplog: "client [date] frontend backend/server Tw/Tc/Tt bytes state ac/fc/bc/sc/rc sq/bq"
TCP_LOG_LINE = re.compile(rf" {LISTEN_NAME} {LISTEN_NAME}/(?P<server>\S+) (?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tt>\d+) "
                          r"\d+ \S+ \d+/\d+/\d+/(?P<sc>\d+)/\d+ (?P<sq>\d+)/(?P<bq>\d+)$")


def scrape(stack, url):
    """A Prometheus endpoint's samples as {'name{labels}': value}."""
    text = stack.host.check_output("curl -sS --max-time 10 %s", url)
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def host_time(stack):
    return stack.host.check_output("date +%s.%N")


@pytest.fixture(scope="module")
def queued(stack):
    """More sessions through HAProxy than the server's maxconn, each a SELECT
    SLEEP from the app's account: while the excess waits in HAProxy's queue,
    both exporters are scraped; once all are done, HAProxy's log is read."""
    # An old HAProxy worker (a recent reload) would hold sessions of its own in MySQL.
    assert wait_for(lambda: stack.haproxy_workers()[1] == 0, 90) is not None, "an old HAProxy worker stayed"
    limit = int(stack.server()["slim"])
    # The app's pooled connections already hold slots.
    held = int(stack.server()["scur"])
    sessions = limit - held + EXCESS
    since = host_time(stack)
    # Clients left running on the host, with the app's password from its root-only file.
    stack.host.check_output(
        "nohup bash -c %s >/dev/null 2>&1 &",
        f"set -a; . {APP_ENV_FILE}; export MYSQL_PWD=\"$FLASKAPP_DB_PASSWORD\"; "
        f"for i in $(seq {sessions}); do mysql -N -h 127.0.0.1 -P {PROXY_PORT} -u \"$FLASKAPP_DB_USER\" "
        f"-e 'SELECT SLEEP({SLEEP_SECONDS})' & done; wait")
    record = {"limit": limit, "held": held, "sessions": sessions, "since": since, "scrapes": []}
    backend_queue = f'haproxy_backend_current_queue{{proxy="{LISTEN_NAME}"}}'

    def scraped_full_queue():
        record["haproxy"] = scrape(stack, HAPROXY_METRICS)
        record["scrapes"].append(record["haproxy"].get(backend_queue))
        return record["haproxy"].get(backend_queue) == EXCESS

    record["queue_seen_after"] = wait_for(scraped_full_queue, SLEEP_SECONDS, interval=0.2)
    record["mysql"] = scrape(stack, MYSQL_METRICS)
    record["app_sessions"] = int(stack.root_sql(APP_SESSIONS))
    # The queued ones run once the first have slept: two rounds, then their log lines.
    record["drained_after"] = wait_for(lambda: int(stack.server()["scur"]) <= held, 4 * SLEEP_SECONDS)

    def logged_every_session():
        record["log"] = stack.host.check_output("journalctl -u haproxy --since @%s --no-pager -o cat", since)
        return len([line for line in record["log"].splitlines() if TCP_LOG_LINE.search(line)]) >= sessions

    # A session's line reaches the journal a moment after it ends (under load, after
    # the drain was seen): the test reads the log once every line is in, or at 10 s.
    wait_for(logged_every_session, 10, interval=0.2)
    return record


def test_haproxy_metrics_show_the_limit_the_sessions_and_the_queue(stack, observe, queued):
    server = f'{{proxy="{LISTEN_NAME}",server="mysql1"}}'
    metrics = queued["haproxy"]
    observe(f"[{stack.name}] {queued['sessions']} sessions through HAProxy beside {queued['held']} pooled, limit "
            f"{queued['limit']}: exported sessions {metrics.get('haproxy_server_current_sessions' + server)}, "
            f"limit {metrics.get('haproxy_server_limit_sessions' + server)}, backend queue per scrape "
            f"{queued['scrapes']}")
    assert queued["queue_seen_after"] is not None, f"the queue never reached {EXCESS}: {queued['scrapes']}"
    assert metrics["haproxy_server_limit_sessions" + server] == queued["limit"]
    assert metrics["haproxy_server_current_sessions" + server] == queued["limit"]
    # Without persistence, connections wait in the backend's queue, not the server's.
    assert metrics["haproxy_server_current_queue" + server] == 0


def test_mysql_metrics_show_the_connections_the_limit_lets_through(stack, observe, queued):
    threads = queued["mysql"]["mysql_global_status_threads_connected"]
    observe(f"[{stack.name}] while {EXCESS} waited in HAProxy's queue: MySQL's Threads_connected "
            f"(exported) {threads:.0f}, the app account's sessions {queued['app_sessions']}")
    assert queued["mysql"]["mysql_up"] == 1
    assert queued["app_sessions"] == queued["limit"]
    # The app's sessions plus root's, the health check's and the exporter's own.
    assert queued["limit"] < threads <= queued["limit"] + 5


def test_the_exporters_listen_on_loopback_only(stack):
    for port in (DEFAULTS["haproxy"]["haproxy_prometheus_port"], DEFAULTS["mysql"]["mysql_exporter_port"]):
        assert stack.listening_addresses(port) == {"127.0.0.1"}, port


def test_the_mysql_exporter_has_its_own_least_privilege_account(stack):
    user = DEFAULTS["mysql"]["mysql_exporter_user"]
    grants = stack.root_sql(f"SHOW GRANTS FOR '{user}'@'localhost'")
    assert re.search(r"GRANT PROCESS ON \*\.\* TO [`']" + user, grants), grants
    assert "SELECT" not in grants and "ALL PRIVILEGES" not in grants, grants
    assert stack.root_sql(f"SELECT Host FROM mysql.user WHERE User = '{user}'").split() == ["localhost"]
    config = stack.host.file("/etc/prometheus/flaskstack-mysqld-exporter.cnf")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
    assert "password" not in stack.host.check_output("ps -o args= -C prometheus-mysqld-exporter")


def test_queued_connections_are_logged_with_their_time_in_the_queue(stack, observe, queued):
    lines = [match for match in map(TCP_LOG_LINE.search, queued["log"].splitlines()) if match]
    # The others wait a millisecond or so (Tw counts from the accept).
    waited = [line for line in lines if int(line["Tw"]) >= 1000]
    observe(f"[{stack.name}] journalctl -u haproxy: {len(lines)} connection lines, {len(waited)} with a queue time; "
            f"e.g. {waited[0].string.strip() if waited else None}")
    assert queued["drained_after"] is not None, "the sessions did not end"
    assert len(lines) >= queued["sessions"], queued["log"][-2000:]
    # Exactly those that queued, each for about a first session's sleep.
    assert len(waited) == EXCESS, [line.string for line in lines]
    assert all(int(line["Tw"]) >= (SLEEP_SECONDS - 1) * 1000 for line in waited), [line.string for line in waited]
    # No connection ever had more than the limit's sessions at its server.
    assert max(int(line["sc"]) for line in lines) <= queued["limit"]


def test_the_app_logs_each_request_with_its_status_and_duration(stack):
    since = host_time(stack)
    assert stack.http("/sleep/1").status == 200
    found = []

    def logged():
        log = stack.host.check_output("journalctl -u flaskapp@%s --since @%s --no-pager -o cat", str(APP_PORTS[0]), since)
        found[:] = [log, re.search(r'"GET /sleep/1 HTTP/1\.1" 200 \S+ (\d+)ms$', log, re.MULTILINE)]
        return found[1]

    assert wait_for(logged, 10) is not None, found[0]
    assert 1000 <= int(found[1].group(1)) < 5000, found[1].group(0)
