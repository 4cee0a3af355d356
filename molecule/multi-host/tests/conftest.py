"""The six hosts of the multi-host scenario as `stacks` (one Stack each, from
molecule/resources/flaskstack_testlib.py, shared with the single-host scenario),
reached by inventory name, and their addresses on the scenario's network."""
import os
import pathlib
import secrets
import sys
import time

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# The observe fixture and its report at the end of the run, for this scenario too.
from flaskstack_testlib import (DB_USER, Stack, changed_tasks, extra_vars_args, observe,  # noqa: E402,F401
                                pytest_runtest_protocol, pytest_terminal_summary, run_playbook)

NAMES = ("db1", "db2", "db3", "lb1", "app1", "app2")


@pytest.fixture(scope="session")
def stacks():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: Stack(testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}"), name)
            for name in NAMES}


@pytest.fixture(scope="session")
def address(stacks):
    """Each host's IPv4 address on the network the tiers share."""
    return {name: stack.host.check_output("hostname -I").split()[0] for name, stack in stacks.items()}


# The database hosts: one replicated group.
MEMBERS = ("db1", "db2", "db3")
MEMBERS_SQL = ("SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE FROM performance_schema.replication_group_members "
               "ORDER BY MEMBER_HOST")


def primary_of(stacks, address):
    """The inventory name of the member ONLINE as PRIMARY, as the first member
    that answers sees it, or None."""
    by_address = {address[name]: name for name in MEMBERS}
    for name in MEMBERS:
        result = stacks[name].host.run("mysql --batch --skip-column-names -e %s", MEMBERS_SQL)
        primaries = [line.split("\t")[0] for line in result.stdout.splitlines() if line.endswith("\tONLINE\tPRIMARY")]
        if result.rc == 0 and primaries:
            return by_address.get(primaries[0])
    return None


@pytest.fixture
def primary(stacks, address):
    """The member that takes writes now, where the app's sessions land: a
    rolling restart or a failover moves it."""
    name = primary_of(stacks, address)
    assert name, "no member of the group is ONLINE as its primary"
    return stacks[name]


def server_of(name):
    """A member's server in lb1's MySQL listener: mysql1, mysql2... in the group's order."""
    return f"mysql{MEMBERS.index(name) + 1}"


# --- Two full reruns that several tests assert ----------------------------------------------

# A host that left the proxy tier: listed for the app's account by the first rerun only.
GONE_PROXY = "192.0.2.99"
PASSWORD_HASHES_SQL = f"SELECT authentication_string FROM mysql.user WHERE User = '{DB_USER}' ORDER BY Host"
SECOND_PASSWORDS_SQL = (f"SELECT COUNT(*) FROM mysql.user WHERE User = '{DB_USER}' "
                        "AND JSON_EXTRACT(User_attributes, '$.additional_password') IS NOT NULL")


def app_account_hosts(db):
    """The hosts MySQL has the app's account for, in order."""
    return db.root_sql(f"SELECT Host FROM mysql.user WHERE User = '{DB_USER}' ORDER BY Host").split()


@pytest.fixture(scope="session")
def group_rotated_and_back(stacks, address):
    """The password rotation as an operator runs it, on every host and under
    traffic that keeps making new logins (six streams of 0.2 s queries through
    lb1 over four instances with pools of one): a full rerun to a new password,
    then a full rerun back to the controller's own. The first also lists a host
    that left the proxy tier for the app's account (mysql_app_user_hosts), so
    the second, with the inventory's values, must drop that account. Records,
    per run, what test_secrets.py and test_multi_host.py assert."""
    primary = stacks[primary_of(stacks, address)]
    variants = (("to a new password", {"vault_flaskstack_db_password": "rotated" + secrets.token_hex(12),
                                       "mysql_app_user_hosts": [address["lb1"], GONE_PROXY]}),
                ("back", {}))
    runs = []
    for label, extra_vars in variants:
        refused_before = primary.mysql_status("Aborted_connects")
        with stacks["app1"].steady_reads(address=address["lb1"], ports=[80], streams=6, path="/sleep/0.2") as reads:
            started = time.monotonic()
            run = run_playbook(*extra_vars_args(extra_vars))
            took = time.monotonic() - started
        runs.append({
            "label": label, "primary": primary.name, "returncode": run.returncode, "tail": run.stdout[-3000:],
            "seconds": took, "changed": changed_tasks(run.stdout), "reads": reads,
            "refused": int(primary.mysql_status("Aborted_connects")) - int(refused_before),
            "hashes": {name: stacks[name].root_sql(PASSWORD_HASHES_SQL) for name in MEMBERS},
            "second_passwords": {name: stacks[name].root_sql(SECOND_PASSWORDS_SQL) for name in MEMBERS},
            "app_account_hosts": app_account_hosts(primary)})
    return runs


def pytest_collection_modifyitems(items):
    """The tests of the password rotation (group_rotated_and_back) run last: its
    two six-host reruns under traffic are the scenario's costliest work, and by
    then the single-host scenarios beside it are done or nearly, so the reruns
    meet the least contention. The rest keep their order (the join first)."""
    items.sort(key=lambda item: "group_rotated_and_back" in item.fixturenames)
