"""The tiers on separate hosts, provisioned from the inventory alone: the app
hosts reach MySQL only through lb1, MySQL knows only lb1, and lb1's HTTP entry
point balances every gunicorn instance and routes around a stopped one. Each
proven across the scenario's network."""
import json
import pathlib
import threading
import time

import pytest
from flaskstack_testlib import (APP_ENV_FILE, APP_PORTS, HAPROXY_CONFIG, app_connection_tls, changed_tasks,
                                failure_text, haproxy_command, haproxy_stats, http_get, mysql_unit, root_sql_run,
                                run_playbook, wait_for)

PROBE_SCRIPT = (pathlib.Path(__file__).parent / "http_probe.py").read_text()
APP_HOSTS = ("app1", "app2")
INSTANCES = {f"{name}-{port}" for name in APP_HOSTS for port in APP_PORTS}
SEEDED = {"1": {"item": "task1", "status": "pending"}, "2": {"item": "task2", "status": "done"}}
HAPROXY_ONLY = ["haproxy : Write haproxy.cfg", "haproxy : Reload HAProxy"]
MYSQL_HOST_OF_APP_ACCOUNT = "SELECT Host FROM mysql.user WHERE User = 'haproxy_user' ORDER BY Host"


def probe(host, url, seconds, interval=0.05):
    """Requests to url from host for some seconds: [[t, status, served_by], ...]."""
    return json.loads(host.check_output("python3 -c %s %s %s %s %s", PROBE_SCRIPT, url,
                                        str(seconds), str(interval), "X-Served-By"))


def connect_as_app(host, db_host, port):
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
    return host.check_output("set -a; . %s; /opt/flaskapp/venv/bin/python -c %s %s %s",
                             APP_ENV_FILE, script, db_host, str(port))


def app_account_hosts(db):
    return root_sql_run(db, MYSQL_HOST_OF_APP_ACCOUNT).split()


# --- Each tier on its own hosts, listening where its clients are -----------------

def test_each_tier_runs_only_on_its_hosts(hosts):
    db, lb = hosts["db1"], hosts["lb1"]
    assert db.service(mysql_unit(db)).is_running
    assert lb.service("haproxy").is_running and lb.service("haproxy").is_enabled
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert hosts[name].service(f"flaskapp@{port}").is_running
    for name, host in hosts.items():
        if name != "db1":
            assert not host.exists("mysqld"), name
        if name != "lb1":
            assert not host.exists("haproxy"), name
        if name not in APP_HOSTS:
            assert not host.file("/opt/flaskapp").exists, name


def test_services_listen_on_the_stack_network(hosts, address):
    assert hosts["db1"].socket(f"tcp://{address['db1']}:3306").is_listening
    assert hosts["lb1"].socket(f"tcp://{address['lb1']}:5555").is_listening
    assert hosts["lb1"].socket(f"tcp://{address['lb1']}:80").is_listening
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert hosts[name].socket(f"tcp://{address[name]}:{port}").is_listening
        env = hosts[name].file(APP_ENV_FILE).content_string
        assert f"FLASKAPP_DB_HOST={address['lb1']}\n" in env


def test_status_command_shows_each_hosts_part(hosts, address):
    assert "haproxy.service: active (running)" in hosts["lb1"].check_output("flaskstack-status")
    report = hosts["app1"].check_output("flaskstack-status")
    for port in APP_PORTS:
        assert f"GET http://{address['app1']}:{port}/todos -> 200" in report


# --- The app reaches MySQL only through lb1 --------------------------------------

@pytest.mark.parametrize("name", APP_HOSTS)
@pytest.mark.parametrize("port", APP_PORTS)
def test_todos_on_every_app_instance(hosts, address, name, port):
    response = http_get(hosts[name], "/todos", port, address=address[name])
    assert response.status == 200, response.body
    assert response.json() == SEEDED


@pytest.mark.parametrize("name", APP_HOSTS)
def test_app_offers_tls_when_its_traffic_leaves_the_host(hosts, name):
    pymysql_version, tries_tls = app_connection_tls(hosts[name])
    assert "FLASKAPP_DB_TLS=preferred" in hosts[name].file(APP_ENV_FILE).content_string
    # PyMySQL 1.1 (Python 3.8, Ubuntu 20.04) has no preferred mode.
    assert tries_tls == (pymysql_version >= (1, 2))


def test_mysql_sees_connections_from_lb1_not_from_the_app(hosts, address):
    db = hosts["db1"]
    sleeper = threading.Thread(target=http_get, args=(hosts["app1"], "/sleep/3"),
                               kwargs={"address": address["app1"]})
    sleeper.start()
    seen = set()
    try:
        # The query's connection, as MySQL shows it: "address:port" of its peer.
        def sleep_query_seen():
            rows = root_sql_run(db, "SELECT HOST FROM information_schema.PROCESSLIST "
                                    "WHERE USER = 'haproxy_user' AND INFO LIKE 'SELECT SLEEP%'")
            seen.update(row.rsplit(":", 1)[0] for row in rows.split())
            return seen
        assert wait_for(sleep_query_seen, timeout=3, interval=0.2) is not None, "no SELECT SLEEP seen on db1"
    finally:
        sleeper.join()
    assert seen == {address["lb1"]}, f"app1 is {address['app1']}, lb1 is {address['lb1']}"
    # Every connection of the app's account, pooled ones included, comes from lb1.
    peers = root_sql_run(db, "SELECT DISTINCT SUBSTRING_INDEX(HOST, ':', 1) FROM information_schema.PROCESSLIST "
                             "WHERE USER = 'haproxy_user'").split()
    assert peers == [address["lb1"]]


def test_app_account_exists_only_for_lb1(hosts, address):
    assert app_account_hosts(hosts["db1"]) == [address["lb1"]]


@pytest.mark.parametrize("name", APP_HOSTS)
def test_mysql_refuses_the_app_account_straight_from_an_app_host(hosts, address, name):
    # Through lb1 the same credentials work, so the refusal is about the host.
    assert connect_as_app(hosts[name], address["lb1"], 5555) == "connected"
    answer = connect_as_app(hosts[name], address["db1"], 3306)
    # 1130: the host is not allowed to connect, refused before any password check.
    assert answer.startswith("1130 "), answer
    assert address[name] in answer


def test_app_account_for_a_host_that_left_the_proxy_tier_is_dropped(hosts, address):
    db = hosts["db1"]
    gone = "192.0.2.99"
    result = run_playbook("--limit", "db1", "--tags", "mysql",
                          "-e", json.dumps({"mysql_app_user_hosts": [address["lb1"], gone]}))
    assert result.returncode == 0, failure_text(result)
    assert app_account_hosts(db) == sorted([address["lb1"], gone])
    result = run_playbook("--limit", "db1", "--tags", "mysql")
    assert result.returncode == 0, failure_text(result)
    assert changed_tasks(result.stdout) == ["mysql : Drop the application account for hosts no longer listed"]
    assert app_account_hosts(db) == [address["lb1"]]


# --- One URL for the app: lb1's HTTP entry point -----------------------------------

def test_http_entry_point_balances_every_gunicorn_instance(hosts, address):
    config = hosts["lb1"].file(HAPROXY_CONFIG).content_string
    for name in APP_HOSTS:
        for port in APP_PORTS:
            assert f"server {name}-{port} {address[name]}:{port} check" in config
    results = probe(hosts["app1"], f"http://{address['lb1']}/", seconds=3)
    assert {status for _, status, _ in results} == {200}
    served = [server for _, _, server in results]
    counts = {instance: served.count(instance) for instance in INSTANCES}
    print(f"\n{len(served)} requests through lb1: {counts}")
    assert set(served) == INSTANCES
    # Round robin over four healthy instances: an even share each.
    assert max(counts.values()) - min(counts.values()) <= 2, counts


def test_stopped_instance_leaves_rotation_and_requests_keep_succeeding(hosts, address):
    lb, app2 = hosts["lb1"], hosts["app2"]
    stopped = "app2-8001"

    def status_of(server):
        return haproxy_stats(lb)[("flaskapp", server)]["status"]

    assert status_of(stopped) == "UP"
    outcome = {}
    prober = threading.Thread(target=lambda: outcome.update(
        results=probe(hosts["app1"], f"http://{address['lb1']}/todos", seconds=16)))
    prober.start()
    time.sleep(3)
    app2.check_output("systemctl stop flaskapp@8001")
    stopped_at = 3
    try:
        prober.join()
        results = outcome["results"]
        statuses = [status for _, status, _ in results]
        before = {server for t, _, server in results if t < stopped_at}
        # Health checks every 2s, three failures to mark it DOWN: gone well within 8s.
        after = [server for t, _, server in results if t > stopped_at + 8]
        print(f"\n{len(results)} requests, statuses {set(statuses)}; stopped {stopped} at {stopped_at}s; "
              f"served after {stopped_at + 8}s: {sorted(set(after))}")
        assert stopped in before
        assert set(statuses) == {200}, [r for r in results if r[1] != 200]
        assert after and stopped not in after
        assert set(after) == INSTANCES - {stopped}
        assert status_of(stopped).startswith("DOWN")
    finally:
        app2.check_output("systemctl start flaskapp@8001")
    # Back in rotation once its checks pass again.
    assert wait_for(lambda: status_of(stopped) == "UP", timeout=15) is not None
    served = {server for _, _, server in probe(hosts["app1"], f"http://{address['lb1']}/", seconds=2)}
    assert served == INSTANCES


# --- A second database host is one inventory line --------------------------------

def test_second_database_host_is_one_inventory_line(hosts, address, tmp_path):
    lb = hosts["lb1"]
    # db2, a second name for db1's MySQL, so both servers are real and healthy.
    extra = tmp_path / "db2.yml"
    extra.write_text(json.dumps({"mysql": {"hosts": {"db2": {"flaskstack_address": address["db1"]}}}}))
    try:
        result = run_playbook("--limit", "lb1", "--tags", "haproxy", extra_inventories=[extra])
        assert result.returncode == 0, failure_text(result)
        assert changed_tasks(result.stdout) == HAPROXY_ONLY
        config = lb.file(HAPROXY_CONFIG).content_string
        assert f"server mysql1 {address['db1']}:3306 maxconn 10 check" in config
        assert f"server mysql2 {address['db1']}:3306 maxconn 10 check" in config
        assert lb.run("haproxy -c -f %s", HAPROXY_CONFIG).rc == 0
        assert wait_for(lambda: haproxy_stats(lb)[("msyql", "mysql2")]["status"] == "UP", timeout=10) is not None
        assert haproxy_stats(lb)[("msyql", "mysql1")]["status"] == "UP"
        for port in APP_PORTS:
            assert http_get(hosts["app1"], "/todos", port, address=address["app1"]).status == 200
    finally:
        result = run_playbook("--limit", "lb1", "--tags", "haproxy")
    assert result.returncode == 0, failure_text(result)
    assert ("msyql", "mysql2") not in haproxy_stats(lb)


# --- Tuning lb1 by rerun (the settings make bench compares) ------------------------

def test_haproxy_tuning_settings_apply_by_rerun(hosts, address):
    lb = hosts["lb1"]
    tuned = {"haproxy_nbthread": 1, "haproxy_cpu_map": "1/1 0", "haproxy_listen_options": ["tcp-smart-connect"],
             "haproxy_global_settings": ["tune.bufsize 32768"]}
    try:
        result = run_playbook("--limit", "lb1", "--tags", "haproxy", "-e", json.dumps(tuned))
        assert result.returncode == 0, failure_text(result)
        assert changed_tasks(result.stdout) == HAPROXY_ONLY
        config = lb.file(HAPROXY_CONFIG).content_string
        for line in ("    nbthread 1\n", "    cpu-map 1/1 0\n", "    option tcp-smart-connect\n",
                     "    tune.bufsize 32768\n"):
            assert line in config
        assert "Nbthread: 1\n" in haproxy_command(lb, "show info")
        assert http_get(hosts["app1"], "/todos", address=address["app1"]).status == 200
    finally:
        result = run_playbook("--limit", "lb1", "--tags", "haproxy")
    assert result.returncode == 0, failure_text(result)
    config = lb.file(HAPROXY_CONFIG).content_string
    for setting in ("nbthread", "cpu-map", "tcp-smart-connect", "tune.bufsize"):
        assert setting not in config
