"""The four hosts of the multi-host scenario as `stacks` (one Stack each, from
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

NAMES = ("db1", "lb1", "app1", "app2")


@pytest.fixture(scope="module")
def stacks():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: Stack(testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}"), name)
            for name in NAMES}


@pytest.fixture(scope="module")
def address(stacks):
    """Each host's IPv4 address on the network the tiers share."""
    return {name: stack.host.check_output("hostname -I").split()[0] for name, stack in stacks.items()}
