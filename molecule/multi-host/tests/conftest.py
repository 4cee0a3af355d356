"""The six hosts of the multi-host scenario as `stacks` (one Stack each, from
molecule/resources/flaskstack_testlib.py, shared with the single-host scenario),
reached by inventory name, and their addresses on the scenario's network."""
import os
import pathlib
import sys

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# The observe fixture and its report at the end of the run, for this scenario too.
from flaskstack_testlib import Stack, observe, pytest_terminal_summary  # noqa: E402,F401

NAMES = ("db1", "db2", "db3", "lb1", "app1", "app2")


@pytest.fixture(scope="module")
def stacks():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: Stack(testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}"), name)
            for name in NAMES}


@pytest.fixture(scope="module")
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
