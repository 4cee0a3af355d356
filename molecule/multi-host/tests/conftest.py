"""The four hosts of the multi-host scenario, reached by name, and their
addresses on the scenario's network. Helpers are shared with the single-host
scenario (molecule/resources/flaskstack_testlib.py)."""
import os
import pathlib
import sys

import pytest
import testinfra

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))

NAMES = ("db1", "lb1", "app1", "app2")


@pytest.fixture(scope="module")
def hosts():
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}") for name in NAMES}


@pytest.fixture(scope="module")
def address(hosts):
    """Each host's IPv4 address on the network the tiers share."""
    return {name: host.check_output("hostname -I").split()[0] for name, host in hosts.items()}
