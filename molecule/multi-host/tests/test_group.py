"""The database tier as a replicated group: db1 and db2 run Group Replication
(single primary) from the converge, db3 joins when the first test adds it to
the inventory, lb1's MySQL listener sends connections only to the primary, and
the group survives the loss of its primary, whether its MySQL is killed or its
whole host goes away, with every acknowledged write kept. The tests of this
module run in order, the first one first: the others need the three members."""
import concurrent.futures
import json
import os
import pathlib
import subprocess
import threading
import time

import pytest
from conftest import MEMBERS, MEMBERS_SQL, primary_of, server_of
from flaskstack_testlib import (CHECK_PORT, DB_NAME, DEFAULTS, HAPROXY_CONFIG, PROXY_PORT, changed_tasks, failure_message,
                                recap, run_playbook, wait_for)
from test_multi_host import probe

WRITER_SCRIPT = pathlib.Path(__file__).parent / "acked_writes.py"
RECOVERY_USER = DEFAULTS["mysql"]["mysql_group_recovery_user"]
# What a new primary must take writes within, after the old one is lost.
FAILOVER_BOUND = 15
# Writes and reads are answered again in the last seconds of a failover's run.
END_OF_RUN = 3
# A test-only writer: INSERT (and SELECT, to count) on a table of its own.
WRITER = ("flaskstack_failover_writer", "Failover-writer-pw-1")
WRITES_TABLES = ("failover_test.killed_mysqld", "failover_test.cut_off_host")


def members_seen_by(stack):
    """[(address, state, role), ...] as one member sees the group."""
    return [tuple(line.split("\t")) for line in stack.root_sql(MEMBERS_SQL).splitlines()]


def all_online(stacks):
    return all(result.rc == 0 and result.stdout.count("\tONLINE\t") == len(MEMBERS)
               for result in (stacks[name].host.run("mysql --batch --skip-column-names -e %s", MEMBERS_SQL)
                              for name in MEMBERS))


def check_answer(lb, address, path):
    """HTTP status of a member's health check at path, asked from lb1 as HAProxy asks it."""
    return lb.host.run("curl -s -o /dev/null -w '%%{http_code}' --max-time 5 http://%s:%s%s",
                       address, str(CHECK_PORT), path).stdout


@pytest.fixture(scope="module")
def writer(stacks, address):
    """The test-only writer account and its table, created on the primary (the
    group copies them), dropped after the module's tests."""
    primary = stacks[primary_of(stacks, address)]
    lb = address["lb1"]
    primary.root_sql(
        "CREATE DATABASE IF NOT EXISTS failover_test; "
        + "".join(f"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY); " for table in WRITES_TABLES) +
        f"CREATE USER IF NOT EXISTS '{WRITER[0]}'@'{lb}' IDENTIFIED BY '{WRITER[1]}' REQUIRE SSL; "
        f"GRANT INSERT, SELECT ON failover_test.* TO '{WRITER[0]}'@'{lb}'")
    yield WRITER
    primary = stacks[primary_of(stacks, address)]
    primary.root_sql(f"DROP USER IF EXISTS '{WRITER[0]}'@'{lb}'; DROP DATABASE IF EXISTS failover_test")


def write_steadily(stacks, address, seconds, table):
    """Start the writer on app1 through lb1's listener; returns a thread whose
    `result` holds {acked: [[id, t]], failed: [[id, t, error]]}."""
    app1 = stacks["app1"].host
    ca_file = app1.check_output("set -a; . /etc/flaskapp/flaskapp.env; echo $FLASKAPP_DB_TLS_CA")
    thread = threading.Thread(daemon=True)
    thread.result = None

    def run():
        output = app1.check_output(
            "WRITER_PASSWORD=%s /opt/flaskapp/venv/bin/python -c %s %s %s %s %s %s %s",
            WRITER[1], WRITER_SCRIPT.read_text(), address["lb1"], str(PROXY_PORT), WRITER[0], table,
            str(seconds), ca_file)
        thread.result = json.loads(output)
    thread.run = run
    thread.start()
    return thread


def longest_gap(acked):
    """(seconds, from, to): the longest time between two acknowledged writes."""
    times = [t for _, t in acked]
    gaps = [(later - earlier, earlier, later) for earlier, later in zip(times, times[1:])]
    return max(gaps) if gaps else (0.0, 0.0, 0.0)


def acked_on_every_member(stacks, ids, table):
    """{member: how many of the acknowledged ids it holds}."""
    found = {}
    for name in MEMBERS:
        found[name] = int(stacks[name].root_sql(
            f"SELECT COUNT(*) FROM {table} WHERE id IN ({','.join(map(str, ids))})") or 0)
    return found


# --- The group, grown by one host ---------------------------------------------------------------

def test_a_host_added_to_the_inventory_joins_the_group_with_the_data(stacks, address, observe):
    """db3 added to the mysql group of the scenario's inventory (a file beside
    it, which every later run reads too) and the playbook rerun on the tiers
    it changes (--limit mysql:haproxy, as docs/multi-host.md says): db3 gets
    MySQL, copies the group's data by clone and joins as a secondary; the
    proxy gets its server; a row written before it joined is on it."""
    primary = stacks[primary_of(stacks, address)]
    assert not stacks["db3"].host.exists("mysqld")
    primary.root_sql(f"INSERT INTO {DB_NAME}.todos (id, item, status) VALUES (98, 'before db3 joined', 'done')")
    inventory = pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    # (Named test-added-*.yml: the scenario's destroy removes it, should this run be cut off.)
    (inventory / "test-added-db3-joins.yml").write_text("all:\n  children:\n    mysql:\n      hosts:\n        db3:\n")
    run = run_playbook("--limit", "mysql:haproxy")
    assert run.returncode == 0, run.stdout[-3000:]
    # Its server's packages came from the first play, which installs every tier's at once.
    first_play = run.stdout.split("PLAY [Install every tier's packages]")[1].split("PLAY [")[0]
    assert "changed: [db3]" in first_play and any(
        name.endswith("Install the packages the host lacks") for name in changed_tasks(first_play)), first_play[-3000:]
    assert wait_for(lambda: all_online(stacks), timeout=60, interval=1) is not None, members_seen_by(primary)
    db3 = stacks["db3"]
    cloned = db3.root_sql("SELECT STATE, SOURCE FROM performance_schema.clone_status")
    observe(f"[multi-host] db3 added to the inventory: joined by the rerun, clone {cloned}; recap "
            f"{ {name: recap(run.stdout, name)['changed'] for name in (*MEMBERS, 'lb1')} }")
    assert cloned.split("\t")[0] == "Completed", cloned
    assert db3.root_sql(f"SELECT item FROM {DB_NAME}.todos WHERE id = 98") == "before db3 joined"
    assert db3.root_sql("SELECT @@super_read_only") == "1"
    assert f"server mysql3 {address['db3']}:" in stacks["lb1"].host.file(HAPROXY_CONFIG).content_string
    primary.root_sql(f"DELETE FROM {DB_NAME}.todos WHERE id = 98")


# --- The group as the run left it -----------------------------------------------------------

def test_the_database_hosts_form_one_group_with_one_primary(stacks, address):
    views = {name: members_seen_by(stacks[name]) for name in MEMBERS}
    expected_hosts = sorted(address[name] for name in MEMBERS)
    for name, view in views.items():
        assert sorted(host for host, _, _ in view) == expected_hosts, (name, view)
        assert [state for _, state, _ in view] == ["ONLINE"] * 3, (name, view)
        assert sorted(role for _, _, role in view) == ["PRIMARY", "SECONDARY", "SECONDARY"], (name, view)
    assert len({tuple(view) for view in views.values()}) == 1, views
    # Secondaries refuse writes; the primary takes them.
    primary = primary_of(stacks, address)
    for name in MEMBERS:
        assert stacks[name].root_sql("SELECT @@super_read_only") == ("0" if name == primary else "1"), name


def test_each_member_holds_the_stacks_data_and_accounts(stacks):
    for name in MEMBERS:
        db = stacks[name]
        assert db.root_sql(f"SELECT COUNT(*) FROM {DB_NAME}.todos") == "2", name
        assert db.root_sql("SELECT COUNT(*) FROM mysql.user WHERE User = 'haproxy_user'") == "1", name


def test_members_talk_over_verified_tls_as_a_least_privileged_account(stacks, address):
    for name in MEMBERS:
        db = stacks[name]
        settings = db.root_sql(
            "SELECT @@group_replication_ssl_mode, @@group_replication_recovery_use_ssl, "
            "@@group_replication_recovery_ssl_verify_server_cert, @@group_replication_communication_stack, "
            "@@require_secure_transport").split()
        assert settings == ["VERIFY_IDENTITY", "1", "1", "MYSQL", "1"], (name, settings)
        accounts = db.root_sql(f"SELECT Host, ssl_type FROM mysql.user WHERE User = '{RECOVERY_USER}' ORDER BY Host")
        assert sorted(line.split("\t")[0] for line in accounts.splitlines()) == sorted(
            address[member] for member in MEMBERS), (name, accounts)
        assert {line.split("\t")[1] for line in accounts.splitlines()} == {"ANY"}, (name, accounts)
        grants = db.root_sql(f"SHOW GRANTS FOR '{RECOVERY_USER}'@'{address['db1']}'")
        assert "GRANT REPLICATION SLAVE ON *.*" in grants, grants
        assert "GRANT BACKUP_ADMIN,CONNECTION_ADMIN,GROUP_REPLICATION_STREAM ON *.*" in grants, grants
        assert len(grants.splitlines()) == 2, grants
    # The members' connections to each other use TLS (none is plain).
    primary = stacks[primary_of(stacks, address)]
    peers = primary.root_sql(
        "SELECT COUNT(*), SUM(s.VARIABLE_VALUE <> '') FROM performance_schema.threads AS t "
        "JOIN performance_schema.status_by_thread AS s ON s.THREAD_ID = t.THREAD_ID AND s.VARIABLE_NAME = 'Ssl_cipher' "
        f"WHERE t.PROCESSLIST_USER = '{RECOVERY_USER}'").split()
    assert int(peers[0]) >= 2 and peers[0] == peers[1], peers


def test_the_checks_name_one_primary_and_the_listener_sends_only_there(stacks, address):
    lb = stacks["lb1"]
    primary = primary_of(stacks, address)
    answers = {name: (check_answer(lb, address[name], "/primary"), check_answer(lb, address[name], "/secondary"))
               for name in MEMBERS}
    assert answers == {name: ("200", "503") if name == primary else ("503", "200") for name in MEMBERS}, answers
    states = {name: lb.server(f"mysql{index}")["status"] for index, name in enumerate(MEMBERS, start=1)}
    assert states == {name: "UP" if name == primary else "DOWN" for name in MEMBERS}, states
    # A session of the app's account through the listener lands on the primary.
    landed = stacks["app1"].app_python(
        "import os, pymysql\n"
        "connection = pymysql.connect(host=os.environ['FLASKAPP_DB_HOST'], port=int(os.environ['FLASKAPP_DB_PORT']),\n"
        "    user=os.environ['FLASKAPP_DB_USER'], password=os.environ['FLASKAPP_DB_PASSWORD'],\n"
        "    ssl_ca=os.environ['FLASKAPP_DB_TLS_CA'], ssl_verify_identity=True)\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SELECT @@hostname')\n"
        "    print(cursor.fetchone()[0])\n")
    assert landed.rc == 0 and landed.stdout.strip() == primary, (landed.stdout, landed.stderr)


HELD_SESSION = """
import os, sys, time, pymysql
connection = pymysql.connect(host=os.environ['FLASKAPP_DB_HOST'], port=int(os.environ['FLASKAPP_DB_PORT']),
    user=os.environ['FLASKAPP_DB_USER'], password=os.environ['FLASKAPP_DB_PASSWORD'],
    ssl_ca=os.environ['FLASKAPP_DB_TLS_CA'], ssl_verify_identity=True, read_timeout=5,
    program_name='flaskstack-held-session')
cursor = connection.cursor()
cursor.execute('SELECT @@hostname')
print(cursor.fetchone()[0], flush=True)
started = time.monotonic()
while time.monotonic() - started < float(sys.argv[1]):
    try:
        cursor.execute('SELECT 1')
    except pymysql.err.MySQLError as error:
        print(time.time(), error.args[0], flush=True)
        break
    time.sleep(0.1)
else:
    print('never cut', flush=True)
"""


def test_a_primary_that_steps_down_has_its_sessions_cut(stacks, address, observe):
    """A planned switchover (group_replication_set_as_primary): HAProxy marks
    the old primary DOWN and cuts the session the app's account held open on
    it (a secondary would go on answering it, refusing only its writes), and
    the listener's new server is the new primary."""
    old = primary_of(stacks, address)
    new = next(name for name in MEMBERS if name != old)
    held = threading.Thread(daemon=True)
    held.result = None
    # The app's account and driver, its environment file, 30 s at most.
    held.run = lambda: setattr(held, "result", stacks["app1"].host.run(
        "set -a; . /etc/flaskapp/flaskapp.env; /opt/flaskapp/venv/bin/python -c %s 30", HELD_SESSION).stdout)
    held.start()
    assert wait_for(lambda: stacks[old].root_sql(
        "SELECT COUNT(*) FROM performance_schema.session_connect_attrs "
        "WHERE ATTR_NAME = 'program_name' AND ATTR_VALUE = 'flaskstack-held-session'") != "0", 15) is not None
    uuid = stacks[new].root_sql("SELECT @@server_uuid")
    switched = time.time()
    stacks[old].root_sql(f"SELECT group_replication_set_as_primary('{uuid}')")
    held.join(60)
    lines = (held.result or "").split()
    assert len(lines) == 3 and lines[0] == old and lines[1] != "never", held.result
    cut_after = float(lines[1]) - switched
    observe(f"[multi-host] switchover {old} -> {new}: the session held on {old} cut {cut_after:.1f} s after "
            f"(MySQL error {lines[2]})")
    assert 0 < cut_after < 5, held.result
    assert primary_of(stacks, address) == new
    assert wait_for(lambda: stacks["lb1"].server(server_of(new))["status"] == "UP", 10) is not None


def test_several_mariadb_hosts_are_refused_before_any_change(stacks):
    """MariaDB's Galera is not supported: database hosts behind one listener on
    MariaDB would be independent databases, so the run stops in its checks."""
    result = run_playbook("--tags", "mysql", "-e", "mysql_flavor=mariadb")
    assert result.returncode != 0
    message = failure_message(result)
    assert "MariaDB's Galera is not supported" in message and "db1, db2, db3 sit behind the same proxies" in message, \
        message
    for name in MEMBERS:
        assert recap(result.stdout, name)["changed"] == 0, name


def test_a_group_whose_members_all_stopped_comes_back_only_when_asked(stacks, address, observe):
    """Every member stopped, then started: no member is ONLINE and none may
    start the group on its own. A rerun refuses, naming the command; with
    mysql_group_reboot=true the group comes back from the member that holds
    every transaction (here the last one stopped, after a write only it saw)."""
    order = [name for name in MEMBERS if name != primary_of(stacks, address)] + [primary_of(stacks, address)]
    last = order[-1]
    for name in order[:-1]:
        stacks[name].host.check_output("systemctl stop mysql")
    # The last member alone takes a write the others never see.
    stacks[last].root_sql(f"INSERT INTO {DB_NAME}.todos (id, item, status) VALUES (99, 'only on {last}', 'pending')")
    stacks[last].host.check_output("systemctl stop mysql")
    # Started together, as after a power cut (each start waits for its server alone).
    with concurrent.futures.ThreadPoolExecutor(len(MEMBERS)) as pool:
        list(pool.map(lambda name: stacks[name].host.check_output("systemctl start mysql"), MEMBERS))
    refused = run_playbook("--tags", "mysql", "--limit", "mysql")
    try:
        assert refused.returncode != 0
        assert "Rerun with -e mysql_group_reboot=true" in failure_message(refused), failure_message(refused)
        assert all(recap(refused.stdout, name)["changed"] == 0 for name in MEMBERS)
    finally:
        # Whatever the refusal showed, the group comes back for the tests after this one.
        back = run_playbook("--tags", "mysql", "--limit", "mysql", "-e", "mysql_group_reboot=true")
    assert back.returncode == 0, back.stdout[-3000:]
    assert wait_for(lambda: all_online(stacks), timeout=120, interval=1) is not None
    assert primary_of(stacks, address) == last
    for name in MEMBERS:
        assert stacks[name].root_sql(f"SELECT item FROM {DB_NAME}.todos WHERE id = 99") == f"only on {last}", name
    stacks[last].root_sql(f"DELETE FROM {DB_NAME}.todos WHERE id = 99")
    observe(f"[multi-host] every member stopped ({', '.join(order)}): a rerun refused; with mysql_group_reboot=true "
            f"the group came back from {last}, with its last write on every member")


# --- Failover ----------------------------------------------------------------------------------

def failover(stacks, address, observe, label, lose, bring_back, table):
    """Writes through the listener for a while; `lose(primary)` takes the
    primary away once writes reach it (about a second in); returns the
    measured outage. Writes and reads must be answered again at the end, so an
    outage that never ended cannot pass as a short one. Then `bring_back` and
    wait until the old primary is ONLINE in the group again, and check every
    acknowledged write on every member."""
    old = primary_of(stacks, address)
    # The bound, and a few seconds of writes after it.
    seconds = FAILOVER_BOUND + 5
    writes = write_steadily(stacks, address, seconds, table)
    reads = threading.Thread(daemon=True)
    reads.result = None

    def probe_reads():
        reads.result = probe(stacks["app1"], f"http://{address['lb1']}/todos", seconds, interval=0.1)
    reads.run = probe_reads
    reads.start()
    assert wait_for(lambda: stacks[old].root_sql(f"SELECT COUNT(*) FROM {table}") not in ("", "0"),
                    timeout=15, interval=0.2) is not None, "no write reached the primary"
    lose(old)
    assert writes.is_alive(), "the writer ended before the primary was lost"
    new = wait_for(lambda: primary_of(stacks, address) not in (None, old), timeout=30, interval=0.2)
    assert new is not None, f"no new primary within 30 s of losing {old}"
    writes.join(seconds + 60)
    reads.join(seconds + 60)
    result = writes.result
    assert result and result["acked"], result
    gap, gap_from, gap_to = longest_gap(result["acked"])
    bring_back(old)
    back = wait_for(lambda: all_online(stacks), timeout=180, interval=1)
    assert back is not None, f"{old} did not rejoin the group within 180 s"
    ids = [number for number, _ in result["acked"]]
    held = acked_on_every_member(stacks, ids, table)
    failed_reads = [sent for sent, status, _ in reads.result if status != 200]
    read_gap = (max(failed_reads) - min(failed_reads)) if failed_reads else 0.0
    observe(f"[multi-host] {label}: new primary {primary_of(stacks, address)} took writes after {gap:.1f} s "
            f"(no write acknowledged from {gap_from:.1f} s to {gap_to:.1f} s of the run, {len(result['failed'])} "
            f"failed); reads through the app failed {len(failed_reads)} of {len(reads.result)} times, within "
            f"{read_gap:.1f} s; {old} back in the group {back:.0f} s after; {len(ids)} acknowledged writes on "
            f"every member: {held}")
    assert gap <= FAILOVER_BOUND, f"writes stopped for {gap:.1f} s (bound {FAILOVER_BOUND} s)"
    assert result["acked"][-1][1] >= seconds - END_OF_RUN, f"no write acknowledged in the run's last {END_OF_RUN} s"
    assert held == {name: len(ids) for name in MEMBERS}, (held, len(ids))
    assert read_gap <= FAILOVER_BOUND, f"reads failed over {read_gap:.1f} s"
    at_end = [status for sent, status, _ in reads.result if sent >= seconds - END_OF_RUN]
    assert at_end and set(at_end) == {200}, f"reads in the run's last {END_OF_RUN} s: {at_end}"


def test_killing_the_primarys_mysql_moves_writes_to_a_new_primary_and_loses_none(stacks, address, writer, observe):
    def kill_mysqld(name):
        stacks[name].host.check_output("pkill -KILL -x mysqld")

    # systemd restarts the killed server; it rejoins by itself.
    failover(stacks, address, observe, "primary's MySQL killed (SIGKILL)", kill_mysqld, lambda name: None,
             WRITES_TABLES[0])


def test_cutting_the_primarys_host_off_moves_writes_and_loses_none(stacks, address, writer, observe):
    def power_off(name):
        subprocess.run(["docker", "kill", name], check=True, capture_output=True)

    def power_on(name):
        subprocess.run(["docker", "start", name], check=True, capture_output=True)

    failover(stacks, address, observe, "primary's host cut off (docker kill)", power_off, power_on,
             WRITES_TABLES[1])
