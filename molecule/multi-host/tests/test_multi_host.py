"""The tiers on separate hosts, provisioned from the inventory alone: the app
hosts reach MySQL only through lb1, MySQL knows only lb1, and lb1's HTTP entry
point balances every gunicorn instance and routes around a stopped one. Each
proven across the scenario's network."""
import json
import pathlib
import threading
import time

import pytest
import yaml
from conftest import GONE_PROXY, MEMBERS, app_account_hosts, primary_of, server_of
from flaskstack_testlib import (APP_ENV_FILE, APP_PORTS, DB_USER, DEFAULTS, HAPROXY_CONFIG, HAPROXY_ONLY, LISTEN_NAME,
                                CHECK_PORT, MYSQL_PORT, PROJECT, PROXY_PORT, SEEDED_TODOS, SERVER_MAXCONN, STATUS_COMMAND,
                                changed_tasks, failure_message, recap, run_script, wait_for)

PROBE_SCRIPT = pathlib.Path(__file__).parent / "http_probe.py"
IDLE_CONNECTIONS_SCRIPT = pathlib.Path(__file__).parent / "idle_connections.py"
APP_HOSTS = ("app1", "app2")
INSTANCES = {f"{name}-{port}" for name in APP_HOSTS for port in APP_PORTS}
HTTP_NAME = DEFAULTS["haproxy"]["haproxy_http_name"]
READS = DEFAULTS["haproxy"]["haproxy_read_listen_name"]
READS_PORT = DEFAULTS["haproxy"]["haproxy_read_bind_port"]
DROP_ACCOUNT = "mysql : Drop the application account for hosts no longer listed"
# The scenario's test-only values on top of the inventory users copy (molecule/multi-host/group_vars).
SCENARIO_VARS = PROJECT / "molecule/multi-host/group_vars"
SCENARIO_MYSQL = yaml.safe_load((SCENARIO_VARS / "mysql.yml").read_text())
SCENARIO_HAPROXY = yaml.safe_load((SCENARIO_VARS / "haproxy/tests.yml").read_text())
# The header naming the instance that answered: on for these tests only.
SERVED_BY = SCENARIO_HAPROXY["haproxy_http_served_by_header"]


def probe(stack, url, seconds, interval=0.05):
    """Requests to url from a host for some seconds: [[t, status, served_by], ...]."""
    return run_script(stack.host, PROBE_SCRIPT, url, seconds, interval, SERVED_BY)


def connect_as_app(stack, db_host, port):
    """Log in as the app's account from this host with the app's own driver, the
    password read from the app's root-only file into the environment. Returns
    'connected' or MySQL's error code and message."""
    script = ("import os, sys, pymysql\n"
              "try:\n"
              "    pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user=os.environ['FLASKAPP_DB_USER'],\n"
              "                    password=os.environ['FLASKAPP_DB_PASSWORD'], connect_timeout=5).close()\n"
              "    print('connected')\n"
              "except pymysql.err.OperationalError as error:\n"
              "    print(error.args[0], error.args[1])\n")
    return stack.host.check_output("set -a; . %s; PYTHONDONTWRITEBYTECODE=1 /opt/flaskapp/venv/bin/python -c %s %s %s",
                                   APP_ENV_FILE, script, db_host, str(port))


def names_of(stack, address):
    """How a host shows a peer's address: the address itself and, since the
    scenario's MySQL resolves client names, the names it resolves to."""
    resolved = stack.host.run("getent hosts %s", address).stdout.split()[1:]
    return {address, *resolved}


# --- Each tier on its own hosts, listening where its clients are -----------------

def test_each_tier_runs_only_on_its_hosts(stacks):
    lb = stacks["lb1"]
    for name in MEMBERS:
        assert stacks[name].host.service(stacks[name].mysql_unit).is_running, name
    assert lb.host.service("haproxy").is_running and lb.host.service("haproxy").is_enabled
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert stacks[name].host.service(f"flaskapp@{port}").is_running
    for name, stack in stacks.items():
        if name not in MEMBERS:
            assert not stack.host.exists("mysqld"), name
        if name != "lb1":
            assert not stack.host.exists("haproxy"), name
        if name not in APP_HOSTS:
            assert not stack.host.file("/opt/flaskapp").exists, name


def test_services_listen_on_the_stack_network_only(stacks, address):
    # The sockets themselves: one bound to every address would show as '*' or '0.0.0.0'.
    assert stacks["db1"].listening_addresses(MYSQL_PORT) == {address["db1"]}
    assert stacks["lb1"].listening_addresses(PROXY_PORT) == {address["lb1"]}
    assert stacks["lb1"].listening_addresses(80) == {address["lb1"]}
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert stacks[name].listening_addresses(port) == {address[name]}, (name, port)
        assert f"FLASKAPP_DB_HOST={address['lb1']}\n" in stacks[name].env_file()


def test_mysql_runs_with_the_roles_settings_not_the_packages_loopback(stacks, address):
    # The package's own option file says bind-address = 127.0.0.1; the role's drop-in is read after it.
    assert stacks["db1"].root_sql("SELECT @@bind_address, @@port, @@skip_name_resolve").split() == \
        [address["db1"], str(MYSQL_PORT), str(int(SCENARIO_MYSQL["mysql_skip_name_resolve"]))]


def test_status_command_shows_each_hosts_part(stacks, address):
    assert "haproxy.service: active (running)" in stacks["lb1"].host.check_output(STATUS_COMMAND)
    assert "flaskstack-mysql-check.service: active (running)" in stacks["db1"].host.check_output(STATUS_COMMAND)
    report = stacks["app1"].host.check_output(STATUS_COMMAND)
    for port in APP_PORTS:
        assert f"GET http://{address['app1']}:{port}/todos -> 200" in report


# --- The app reaches MySQL only through lb1 --------------------------------------

@pytest.mark.parametrize("name", APP_HOSTS)
@pytest.mark.parametrize("port", APP_PORTS)
def test_todos_on_every_app_instance(stacks, address, name, port):
    response = stacks[name].http("/todos", port, address=address[name])
    assert response.status == 200, response.body
    assert response.json() == SEEDED_TODOS


def test_mysql_sees_connections_from_lb1_not_from_the_app(stacks, address, primary):
    db = primary
    sleeper = threading.Thread(target=stacks["app1"].http, args=("/sleep/3",), kwargs={"address": address["app1"]})
    sleeper.start()
    seen = set()
    try:
        # The query's connection, as MySQL shows it: "address:port" of its peer.
        def sleep_query_seen():
            rows = db.root_sql("SELECT HOST FROM information_schema.PROCESSLIST "
                               f"WHERE USER = '{DB_USER}' AND INFO LIKE 'SELECT SLEEP%'")
            seen.update(row.rsplit(":", 1)[0] for row in rows.split())
            return seen
        assert wait_for(sleep_query_seen, timeout=3, interval=0.2) is not None, f"no SELECT SLEEP seen on {db.name}"
    finally:
        sleeper.join()
    lb1 = names_of(db, address["lb1"])
    assert seen and seen <= lb1, f"app1 is {address['app1']}, lb1 is {lb1}"
    # Every connection of the app's account, pooled ones included, comes from lb1.
    peers = db.root_sql("SELECT DISTINCT SUBSTRING_INDEX(HOST, ':', 1) FROM information_schema.PROCESSLIST "
                        f"WHERE USER = '{DB_USER}'").split()
    assert peers and set(peers) <= lb1, peers


def test_app_account_exists_only_for_lb1(stacks, address):
    assert app_account_hosts(stacks["db1"]) == [address["lb1"]]


def first_bytes_from(stack, address, port, timeout=5):
    """What a plain TCP client on this host receives first from address:port:
    the byte count of MySQL's greeting, or 'closed' when the other end hangs
    up at once ('refused' when nothing listens, 'no answer' when the packets
    are dropped)."""
    script = ("import socket, sys\n"
              "try:\n"
              "    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as sock:\n"
              "        data = sock.recv(1024)\n"
              "    print(len(data) if data else 'closed')\n"
              "except ConnectionResetError:\n"
              "    print('closed')\n"
              "except ConnectionRefusedError:\n"
              "    print('refused')\n"
              "except socket.timeout:\n"
              "    print('no answer')\n")
    return stack.host.check_output("python3 -c %s %s %s %s", script, address, str(port), str(timeout))


@pytest.mark.parametrize("name", APP_HOSTS)
def test_mysql_and_its_check_drop_an_app_hosts_packets(stacks, address, name):
    """MySQL's and the check's units take packets only from loopback, db1's own
    address and the proxy tier (IPAddressAllow): an app host gets no answer,
    so it cannot hold connection slots with handshakes that never log in,
    while its credentials work through lb1."""
    assert connect_as_app(stacks[name], address["lb1"], PROXY_PORT) == "connected"
    assert first_bytes_from(stacks[name], address["db1"], MYSQL_PORT, timeout=2) == "no answer"
    assert first_bytes_from(stacks[name], address["db1"], CHECK_PORT, timeout=2) == "no answer"
    assert first_bytes_from(stacks["lb1"], address["db1"], MYSQL_PORT).isdigit()


def test_mysql_refuses_the_app_account_from_a_host_it_does_not_list(stacks, address):
    """From db1's own address, which the units' filter admits, the app's account
    with its real password is refused (1045): it exists for lb1's address only."""
    db = stacks["db1"]
    password = (PROJECT / ".secrets" / "flaskstack_db_password").read_text().strip()
    answer = db.host.run("MYSQL_PWD=%s mysql --batch -h %s -P %s -u %s -e 'SELECT 1'",
                         password, address["db1"], str(MYSQL_PORT), DB_USER)
    assert answer.rc != 0 and "1045" in answer.stderr and "Access denied" in answer.stderr, answer.stderr
    assert any(shown in answer.stderr for shown in names_of(db, address["db1"])), answer.stderr
    assert connect_as_app(stacks["app1"], address["lb1"], PROXY_PORT) == "connected"


def test_only_the_app_tier_reaches_the_mysql_listener(stacks, address):
    lb = stacks["lb1"]
    before = lb.stats()
    # db1 is not an app host: HAProxy hangs up as it connects, before any server slot is taken.
    assert first_bytes_from(stacks["db1"], address["lb1"], PROXY_PORT) == "closed"
    after = lb.stats()
    assert int(after[(LISTEN_NAME, "FRONTEND")]["dcon"]) == int(before[(LISTEN_NAME, "FRONTEND")]["dcon"]) + 1
    assert after[(LISTEN_NAME, "BACKEND")]["stot"] == before[(LISTEN_NAME, "BACKEND")]["stot"]
    # An app host gets MySQL's greeting through the same listener.
    assert first_bytes_from(stacks["app1"], address["lb1"], PROXY_PORT).isdigit()
    assert f"tcp-request connection reject unless {{ src {address['app1']} {address['app2']} }}" in \
        lb.host.file(HAPROXY_CONFIG).content_string


def test_app_account_for_a_host_that_left_the_proxy_tier_is_dropped(group_rotated_and_back, address):
    """A rerun listing one more host for the app's account creates it; the next
    one, with the inventory's values, drops it (the two runs of the password
    rotation, conftest.py's group_rotated_and_back: seen on the primary)."""
    listed, restored = group_rotated_and_back
    assert listed["app_account_hosts"] == sorted([address["lb1"], GONE_PROXY]), listed["app_account_hosts"]
    assert DROP_ACCOUNT not in listed["changed"], listed["changed"]
    assert DROP_ACCOUNT in restored["changed"], restored["changed"]
    assert restored["app_account_hosts"] == [address["lb1"]], restored["app_account_hosts"]


# --- One URL for the app: lb1's HTTP entry point -----------------------------------

def test_http_entry_point_balances_every_gunicorn_instance(stacks, address, observe):
    config = stacks["lb1"].host.file(HAPROXY_CONFIG).content_string
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert f"server {name}-{port} {address[name]}:{port} check" in config
    results = probe(stacks["app1"], f"http://{address['lb1']}/", seconds=3)
    assert {status for _, status, _ in results} == {200}
    served = [server for _, _, server in results]
    counts = {instance: served.count(instance) for instance in INSTANCES}
    observe(f"{len(served)} requests through lb1: {counts}")
    assert set(served) == INSTANCES
    # Round robin over four healthy instances: an even share each.
    assert max(counts.values()) - min(counts.values()) <= 2, counts


def test_stopped_instance_leaves_rotation_and_requests_keep_succeeding(stacks, address, observe):
    """app2's second instance stopped while app1 sends requests through lb1:
    HAProxy marks it DOWN within its checks' bound, sends it nothing more, and
    not one request fails."""
    lb, app2 = stacks["lb1"], stacks["app2"]
    stopped = f"app2-{APP_PORTS[1]}"
    # Checks every 2 s, three failures: DOWN within about 6 s; the probe goes on
    # past the bound, for the other instances to be seen serving after it.
    probe_seconds, down_bound = 15, 10

    def counters():
        """Per instance: connections HAProxy sent it (stot), failed connects (econ)."""
        stats = lb.stats()
        return {server: (int(stats[(HTTP_NAME, server)]["stot"]), int(stats[(HTTP_NAME, server)]["econ"] or 0))
                for server in INSTANCES}

    assert lb.server(stopped, HTTP_NAME)["status"] == "UP"
    outcome, before_probe = {}, counters()
    prober = threading.Thread(target=lambda: outcome.update(
        results=probe(stacks["app1"], f"http://{address['lb1']}/todos", seconds=probe_seconds)))
    prober.start()
    try:
        # The probe's requests are reaching the instance about to stop.
        assert wait_for(lambda: counters()[stopped][0] > before_probe[stopped][0], 10, interval=0.2) is not None, \
            "the probe's requests never reached the instance"
        app2.host.check_output("systemctl stop flaskapp@%s", str(APP_PORTS[1]))
        went_down = wait_for(lambda: lb.server(stopped, HTTP_NAME)["status"].startswith("DOWN"), down_bound,
                             interval=0.2)
        after_down = counters()
        assert went_down is not None, f"{stopped} not marked DOWN within {down_bound} s of its stop"
        # The probe goes on long enough for the others to serve after it.
        assert prober.is_alive(), "the probe ended before the instance was marked DOWN"
        prober.join()
        at_end = counters()
        results = outcome["results"]
        statuses = [status for _, status, _ in results]
        observe(f"{len(results)} requests, statuses {set(statuses)}; {stopped} DOWN {went_down:.1f} s after its "
                f"stop; HAProxy's (sessions, failed connects) per instance then: {after_down}, at the end: {at_end}")
        assert stopped in {server for _, _, server in results}
        assert set(statuses) == {200}, [r for r in results if r[1] != 200]
        # HAProxy's own counters: once DOWN, the stopped instance was sent
        # nothing (not even a connect that failed), the others kept serving.
        assert at_end[stopped] == after_down[stopped]
        for server in INSTANCES - {stopped}:
            assert at_end[server][0] > after_down[server][0], server
        assert lb.server(stopped, HTTP_NAME)["status"].startswith("DOWN")
    finally:
        prober.join()
        app2.host.check_output("systemctl start flaskapp@%s", str(APP_PORTS[1]))
    # Back in rotation once its checks pass again.
    assert wait_for(lambda: lb.server(stopped, HTTP_NAME)["status"] == "UP", timeout=15) is not None
    served = {server for _, _, server in probe(stacks["app1"], f"http://{address['lb1']}/", seconds=2)}
    assert served == INSTANCES


# --- lb1 reconfigured by one rerun: a member's own limit, tuning, a reads listener ---------

LIMITED_MEMBER, LIMITED_MAXCONN, READS_MAXCONN = "db2", 4, 3
TUNED = {"haproxy_nbthread": 1, "haproxy_cpu_map": "1/1 0", "haproxy_listen_options": ["tcp-smart-connect"],
         "haproxy_global_settings": ["tune.bufsize 32768"]}
TUNED_LINES = ("    nbthread 1\n", "    cpu-map 1/1 0\n", "    option tcp-smart-connect\n", "    tune.bufsize 32768\n")
SESSIONS_PER_HOST = """
import collections, json, os, pymysql
sessions = [pymysql.connect(host=os.environ['FLASKAPP_DB_HOST'], port=int(os.environ['READS_PORT']),
    user=os.environ['FLASKAPP_DB_USER'], password=os.environ['FLASKAPP_DB_PASSWORD'],
    ssl_ca=os.environ['FLASKAPP_DB_TLS_CA'], ssl_verify_identity=True) for _ in range(int(os.environ['SESSIONS']))]
def where(session):
    with session.cursor() as cursor:
        cursor.execute('SELECT @@hostname, @@super_read_only')
        return '/'.join(map(str, cursor.fetchone()))
print(json.dumps(collections.Counter(where(session) for session in sessions)))
"""


@pytest.fixture(scope="module")
def lb1_reconfigured(stacks, address):
    """One rerun of lb1 (--tags haproxy) with the values three tests assert:
    one member's own server maxconn (haproxy_server_limits), the tuning
    settings, and the optional reads listener; what lb1 and the app hosts show
    while they are in force is recorded, then the rerun with the inventory's
    values restores the file, and what that leaves is recorded too."""
    lb = stacks["lb1"]
    primary = primary_of(stacks, address)
    secondaries = [name for name in MEMBERS if name != primary]
    seen = {"primary": primary, "secondaries": secondaries}

    def reads_servers():
        return {name: lb.server(server_of(name), proxy=READS) for name in MEMBERS}

    with lb.reconfigured("--tags", "haproxy", haproxy_server_limits={LIMITED_MEMBER: {"maxconn": LIMITED_MAXCONN}},
                         haproxy_read_listener_enabled=True, haproxy_read_server_maxconn=READS_MAXCONN,
                         **TUNED) as change:
        seen["config"] = lb.host.file(HAPROXY_CONFIG).content_string
        seen["config_check"] = lb.host.run("haproxy -c -f %s", HAPROXY_CONFIG).rc
        seen["show_info"] = lb.haproxy("show info")
        seen["slims"] = {name: lb.server(server_of(name))["slim"] for name in MEMBERS}
        seen["primary_up_after"] = wait_for(lambda: lb.server(server_of(primary))["status"] == "UP", timeout=10)
        seen["todos"] = [stacks["app1"].http("/todos", port, address=address["app1"]).status for port in APP_PORTS]
        expected = {name: "DOWN" if name == primary else "UP" for name in MEMBERS}
        seen["reads_states_after"] = wait_for(
            lambda: {name: server["status"] for name, server in reads_servers().items()} == expected, 15)
        seen["reads_servers"] = reads_servers()
        landed = stacks["app1"].app_python(SESSIONS_PER_HOST, READS_PORT=str(READS_PORT),
                                           SESSIONS=str(READS_MAXCONN * len(secondaries)))
        seen["reads_landed"] = json.loads(landed.stdout) if landed.rc == 0 else landed.stderr
        seen["reads_from_db1"] = first_bytes_from(stacks["db1"], address["lb1"], READS_PORT)
    seen["changed"] = changed_tasks(change.result.stdout)
    seen["config_after"] = lb.host.file(HAPROXY_CONFIG).content_string
    seen["limited_slim_after"] = lb.server(server_of(LIMITED_MEMBER))["slim"]
    return seen


def test_a_rerun_with_new_proxy_values_changes_only_haproxy(lb1_reconfigured):
    assert lb1_reconfigured["changed"] == HAPROXY_ONLY
    assert lb1_reconfigured["config_check"] == 0


def test_a_database_host_can_have_limits_of_its_own(lb1_reconfigured, address):
    """haproxy_server_limits, keyed by inventory name: one member's server
    maxconn lowered, the others' kept; the primary's server takes the traffic;
    the inventory's values bring the limit back."""
    seen = lb1_reconfigured
    for name in MEMBERS:
        maxconn = LIMITED_MAXCONN if name == LIMITED_MEMBER else SERVER_MAXCONN
        assert f"server {server_of(name)} {address[name]}:{MYSQL_PORT} maxconn {maxconn} check" in seen["config"]
        assert seen["slims"][name] == str(maxconn), seen["slims"]
    assert seen["primary_up_after"] is not None
    assert seen["todos"] == [200] * len(APP_PORTS)
    assert seen["limited_slim_after"] == str(SERVER_MAXCONN)


def test_haproxy_tuning_settings_apply_by_rerun(lb1_reconfigured):
    seen = lb1_reconfigured
    for line in TUNED_LINES:
        assert line in seen["config"], line
    assert "Nbthread: 1\n" in seen["show_info"]
    for setting in ("nbthread", "cpu-map", "tcp-smart-connect", "tune.bufsize"):
        assert setting not in seen["config_after"], setting


def test_a_reads_listener_spreads_sessions_over_the_secondaries_within_their_limit(lb1_reconfigured, address):
    """The optional second listener: the secondaries UP, the primary DOWN, each
    server with the reads' own maxconn; sessions held open at once fill each
    secondary's limit; a host outside the app tier is refused; the
    inventory's values take the listener away."""
    seen = lb1_reconfigured
    assert f"listen {READS}\n    bind {address['lb1']}:{READS_PORT}\n" in seen["config"], seen["config"]
    assert "http-check send meth GET uri /secondary" in seen["config"]
    assert seen["reads_states_after"] is not None, seen["reads_servers"]
    assert {server["slim"] for server in seen["reads_servers"].values()} == {str(READS_MAXCONN)}
    assert seen["reads_landed"] == {f"{name}/1": READS_MAXCONN for name in seen["secondaries"]}, seen["reads_landed"]
    assert seen["reads_from_db1"] == "closed"
    assert f"listen {READS}" not in seen["config_after"]


# --- A lowered limit holds for every app host's connections ----------------------

def app_connections_on(db):
    """(all, running SELECT SLEEP) connections of the app account MySQL sees."""
    rows = db.root_sql("SELECT COUNT(*), COALESCE(SUM(INFO LIKE 'SELECT SLEEP%'), 0) "
                       f"FROM information_schema.PROCESSLIST WHERE USER = '{DB_USER}'").split()
    return int(rows[0]), int(rows[1])


def test_a_lowered_limit_holds_for_every_app_hosts_connections(stacks, address, observe, primary):
    """lb1's server maxconn lowered by rerun under steady reads from both app
    hosts: once the old worker is gone (hard-stop-after), a burst of /sleep/2
    over all four instances never puts more than the new limit in MySQL, and
    no request fails, then or when the limit is raised again. The limit leaves
    room above the four instances' idle pooled connections (one each), which
    hold server slots: below that an instance would wait for a slot forever."""
    lb, db = stacks["lb1"], primary
    instances = [(name, port) for name in APP_HOSTS for port in APP_PORTS]
    lowered = len(instances) * DEFAULTS["flaskapp"]["flaskapp_db_pool_size"] + 2
    bound = int(SCENARIO_HAPROXY["haproxy_hard_stop_after"].rstrip("s"))
    for name, port in instances:
        assert stacks[name].http("/todos", port, address=address[name]).status == 200
    seen, statuses = {"all": 0, "sleeping": 0}, []

    def sample(stop):
        while not stop.is_set():
            connections, sleeping = app_connections_on(db)
            seen["all"], seen["sleeping"] = max(seen["all"], connections), max(seen["sleeping"], sleeping)
            time.sleep(0.1)

    def sleep_request(name, port):
        statuses.append(stacks[name].http("/sleep/2", port, address=address[name]).status)

    with stacks["app1"].steady_reads(address=address["app1"]) as reads1, \
            stacks["app2"].steady_reads(address=address["app2"]) as reads2:
        with lb.reconfigured("--tags", "haproxy", haproxy_server_maxconn=lowered):
            rerun_end = time.monotonic()
            drained = wait_for(lambda: lb.haproxy_workers()[1] == 0, bound + 30, interval=1)
            drained = drained and time.monotonic() - rerun_end
            lb.haproxy("clear counters")
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(stop,))
            sampler.start()
            burst = [threading.Thread(target=sleep_request, args=instances[i % len(instances)])
                     for i in range(3 * lowered)]
            for request in burst:
                request.start()
            for request in burst:
                request.join()
            stop.set()
            sampler.join()
            server = lb.server(server_of(db.name))
            # Without persistence, connections wait in the backend's queue, not the server's.
            queued = int(lb.stats()[(LISTEN_NAME, "BACKEND")]["qmax"])
    observe(f"[multi-host] lb1 server maxconn lowered to {lowered} under steady reads from app1 and app2: "
            f"old worker gone {drained and round(drained, 1)}s after the rerun; {3 * lowered} x /sleep/2 over "
            f"{len(instances)} instances -> at most {seen['sleeping']} SELECT SLEEP and {seen['all']} app "
            f"connections in MySQL, HAProxy smax {server['smax']} (slim {server['slim']}), queued at most {queued}; "
            f"reads: {reads1['requests']} + {reads2['requests']}, failed {reads1['failures'] + reads2['failures']}")
    assert drained is not None, f"the old worker outlived its bound ({bound}s)"
    assert statuses == [200] * (3 * lowered)
    assert seen["all"] <= lowered and seen["sleeping"] <= lowered
    assert (int(server["slim"]), int(server["smax"])) == (lowered, lowered)
    assert queued > 0
    assert reads1["failures"] == [] and reads2["failures"] == []
    assert reads1["requests"] > 100 and reads2["requests"] > 100


# --- Health checks and the connection budget across hosts ---------------------------

def test_the_http_entry_point_and_the_mysql_listener_share_the_global_limit(stacks):
    lb = stacks["lb1"]
    defaults = DEFAULTS["haproxy"]
    http_share = defaults["haproxy_http_maxconn"]
    stats = lb.stats()
    assert int(stats[(HTTP_NAME, "FRONTEND")]["slim"]) == http_share
    # The metrics endpoint's share comes off too.
    assert int(stats[(LISTEN_NAME, "FRONTEND")]["slim"]) == (defaults["haproxy_global_maxconn"] - http_share
                                                            - defaults["haproxy_admin_maxconn"])
    assert int(stats[("prometheus", "FRONTEND")]["slim"]) == defaults["haproxy_admin_maxconn"]
    assert int(stats[(LISTEN_NAME, "FRONTEND")]["slim"]) >= SERVER_MAXCONN


def test_the_budget_counts_every_proxy_host_even_those_the_run_leaves_out(stacks, tmp_path):
    """A second proxy host (in the inventory, not in this run: --limit lb1) whose
    servers may take most of db1's max_connections: the run on lb1 stops before
    any change, naming both proxies' shares."""
    lb = stacks["lb1"]
    max_connections = DEFAULTS["mysql"]["mysql_max_connections"]
    admin = DEFAULTS["mysql"]["mysql_admin_connections"]
    # One over, with both proxies' old workers after a reload and two health checks.
    lb2_maxconn = (max_connections - admin - 2) // 2 - SERVER_MAXCONN + 1
    extra = tmp_path / "lb2.yml"
    extra.write_text(json.dumps({"haproxy": {"hosts": {"lb2": {
        "flaskstack_address": "192.0.2.10", "haproxy_server_maxconn": lb2_maxconn}}}}))
    result = lb.rerun("--tags", "haproxy", extra_inventories=[extra])
    assert result.returncode != 0
    total = 2 * (SERVER_MAXCONN + lb2_maxconn) + 2 + admin
    assert total > max_connections >= total - 2
    expected = (f"db1: servers' maxconn {SERVER_MAXCONN} (lb1) + {lb2_maxconn} (lb2) + old workers' "
                f"{SERVER_MAXCONN + lb2_maxconn} after a reload + health checks 2 + "
                f"administration {admin} = {total}, EXCEEDS max_connections {max_connections}")
    assert expected in failure_message(result), failure_message(result)
    assert recap(result.stdout, "lb1")["changed"] == 0


class ChecksSince:
    """How many checks the database host answered since the first call, the
    test's own asks (each one counted as a check) left out."""

    def __init__(self):
        self.first, self.asked = None, 0

    def __call__(self, lb, db_address):
        _, answered = lb.login_check(db_address)
        if self.first is None:
            self.first = answered
        self.asked += 1
        # Answered before this ask: the first count, every earlier ask of ours, and HAProxy's.
        return answered - self.first - (self.asked - 1)


def test_the_check_answers_the_proxy_host_and_refuses_the_others(stacks, address):
    """db1's check listens on the tiers' network; its allow-list holds lb1 alone:
    db1's own clients, which its unit's filter admits, are refused (403) before
    anything is checked; app1's packets are dropped (no answer)."""
    asked = {name: stacks[name].host.run("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 http://%s:%s/",
                                         address["db1"], str(CHECK_PORT)).stdout
             for name in ("lb1", "db1", "app1")}
    assert asked == {"lb1": "200", "db1": "403", "app1": "000"}, asked


def test_idle_connections_from_a_client_not_allowed_leave_the_proxys_check_answered(stacks, address, observe, primary):
    """A client on db1 itself (which the check's unit admits and its allow-list
    refuses: another host gets no answer at all) holds 1,100 idle connections to
    the check (once enough to keep lb1's checks unanswered, MySQL DOWN for every
    app): lb1's checks are answered throughout and HAProxy keeps MySQL UP; the
    idle connections are closed, not left holding the service."""
    db, lb = primary, stacks["lb1"]
    db_address = address[db.name]
    seconds = 8
    held = {}
    attacker = threading.Thread(target=lambda: held.update(
        run_script(db.host, IDLE_CONNECTIONS_SCRIPT, db_address, CHECK_PORT, 1100, seconds)))
    attacker.start()
    answers, started = [], time.monotonic()
    while attacker.is_alive() and time.monotonic() - started < seconds + 60:
        response, _ = lb.login_check(db_address)
        answers.append((response.status, response.seconds, lb.server(server_of(db.name))["status"]))
        time.sleep(0.5)
    attacker.join()
    slowest = max(answers, key=lambda answer: answer[1])
    observe(f"[multi-host] a client on {db.name} held {held['connected']} connections to {db.name}:{CHECK_PORT} for {seconds}s "
            f"({held['closed']} closed by {db.name}); lb1 asked {len(answers)} times meanwhile, slowest answer "
            f"{slowest[1]:.3f}s, statuses {sorted({answer[0] for answer in answers})}, "
            f"HAProxy's mysql1 {sorted({answer[2] for answer in answers})}")
    assert held["connected"] >= 1000, held
    assert held["closed"] >= held["connected"] - 10, f"the check kept idle connections open: {held}"
    assert len(answers) >= 5 and {answer[0] for answer in answers} == {200}, answers
    assert slowest[1] < 2, answers
    # Never out of service: a single check missed under the machine's load shows as "UP 2/3"
    # (one failure of the three that mark it DOWN); an unanswered check service fails them all.
    assert all(answer[2].startswith("UP") for answer in answers), answers


def test_the_check_proves_logins_not_the_path_from_the_proxy(stacks, address, observe, primary):
    """What the check proves: MySQL accepts logins (over db1's unix socket), not
    that the path from lb1 to MySQL's port works. With that path cut (db1's
    unit filter admitting no one, at runtime) the check still answers 200 and
    HAProxy keeps MySQL UP; a new request through the app then fails as a 503
    with the lost connect logged once HAProxy's four connect attempts (5 s
    each) have failed, not a hang (the app does not retry a failed connect:
    it took twice as long when it did); with the path back, it answers 200."""
    db, lb, app = primary, stacks["lb1"], stacks["app1"]
    server = server_of(db.name)
    one_request = "import app; print(app.app.test_client().get('/todos').status_code)"
    control = f"/run/systemd/system.control/{db.mysql_unit}.service.d"
    db.host.check_output("systemctl set-property --runtime %s IPAddressAllow=", db.mysql_unit)
    try:
        assert wait_for(lambda: first_bytes_from(lb, address[db.name], MYSQL_PORT, timeout=1) == "no answer",
                        timeout=10) is not None
        checks = ChecksSince()
        checks(lb, address[db.name])
        assert wait_for(lambda: checks(lb, address[db.name]) >= 5, timeout=10) is not None
        assert lb.login_check(address[db.name])[0].status == 200 and lb.server(server)["status"] == "UP"
        started = time.monotonic()
        result = app.app_python(one_request)
        seconds = time.monotonic() - started
        observe(f"[multi-host] path lb1 -> {db.name}:{MYSQL_PORT} cut, check still 200, HAProxy's {server} UP: "
                f"a new request answered {result.stdout.strip()} in {seconds:.1f}s")
        assert result.stdout.strip() == "503", result.stdout + result.stderr
        assert "database error" in result.stderr and "Lost connection" in result.stderr, result.stderr
        assert seconds < 30, seconds
    finally:
        db.host.check_output("rm -rf %s && systemctl daemon-reload", control)
    assert wait_for(lambda: app.app_python(one_request).stdout.strip() == "200", timeout=20) is not None


def test_a_200_from_other_software_on_the_check_port_is_no_mysql(stacks, address, primary):
    """HAProxy expects the check's own answer: with a plain web server on db1's
    check port, answering 200 to everything, lb1 marks MySQL DOWN."""
    db, lb = primary, stacks["lb1"]
    server = server_of(db.name)
    db.host.check_output("systemctl stop flaskstack-mysql-check")
    try:
        # A page at every path HAProxy may ask, answering 200 with text of its own.
        db.host.check_output("mkdir -p /run/flaskstack-impostor && cd /run/flaskstack-impostor && "
                             "echo 'another service' | tee index.html primary secondary >/dev/null && "
                             "chmod -R a+rX /run/flaskstack-impostor")
        db.host.check_output("systemd-run --unit flaskstack-test-impostor --property DynamicUser=yes "
                             "python3 -m http.server %s --bind %s --directory /run/flaskstack-impostor",
                             str(CHECK_PORT), address[db.name])
        assert wait_for(lambda: lb.host.run("curl -s -o /dev/null -w '%%{http_code}' http://%s:%s/primary",
                                            address[db.name], str(CHECK_PORT)).stdout == "200", 10) is not None
        assert wait_for(lambda: lb.server(server)["status"] == "DOWN", 15, interval=0.2) is not None, \
            lb.server(server)
        assert "L7RSP" in lb.server(server)["check_status"], lb.server(server)
    finally:
        db.host.run("systemctl stop flaskstack-test-impostor; rm -rf /run/flaskstack-impostor")
        db.host.check_output("systemctl start flaskstack-mysql-check")
    assert wait_for(lambda: lb.server(server)["status"] == "UP", 15, interval=0.2) is not None, lb.server(server)
