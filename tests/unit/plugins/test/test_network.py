"""The address and port checks of the roles' input (plugins/test/network.py):
Python's ipaddress decides, not a pattern that lets `cafe` or `1.2.3.4/99` through."""
import pytest
from ansible_collections.flaskstack.stack.plugins.test.network import ip_address, ip_network, port

ADDRESSES = ["10.0.0.1", "127.0.0.1", "0.0.0.0", "255.255.255.255", "::", "::1", "fd00::2", "2001:db8::8:800:200c:417a",
             "::ffff:192.0.2.1"]
NETWORKS = ["10.0.0.0/8", "192.168.5.0/24", "10.0.0.1/24", "0.0.0.0/0", "192.0.2.7/32", "fd00::/8", "2001:db8::/32",
            "::/0", "fe80::1/64"]
# Not an address: hex letters, out-of-range parts, names, a number, netmasks in address form, stray spaces.
NEITHER = ["cafe", "beef::cafe::1", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "10.0.0.1 ", " 10.0.0.1", "",
           "db1", "clients.example.com", "localhost", "any", "1.2.3.4/99", "10.0.0.0/33", "fd00::/129", "10.0.0.0/",
           "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/255.0.0.0", "10.0.0.0/ 8", "/8", "256.0.0.0/8", "cafe/8"]


@pytest.mark.parametrize("value", ADDRESSES)
def test_addresses_are_addresses_and_networks(value):
    assert ip_address(value) and ip_network(value)


@pytest.mark.parametrize("value", NETWORKS)
def test_networks_are_networks_not_addresses(value):
    assert ip_network(value) and not ip_address(value)


@pytest.mark.parametrize("value", NEITHER)
def test_anything_else_is_neither(value):
    assert not ip_address(value) and not ip_network(value)


@pytest.mark.parametrize("value", [None, 167772161, ["10.0.0.1"], {"address": "10.0.0.1"}, True])
def test_only_strings_are_considered(value):
    assert not ip_address(value) and not ip_network(value)


@pytest.mark.parametrize("value", [1, 80, 5555, 65535, "1", "8000", "65535"])
def test_ports(value):
    assert port(value)


# Out of range, signs, spaces, non-ASCII digits, floats and bools (True would be port 1).
@pytest.mark.parametrize("value", [0, 65536, -1, "0", "70000", "-1", "+80", " 80", "80 ", "", "abc", "８０", 80.0, "80.0",
                                   True, None, [80]])
def test_not_ports(value):
    assert not port(value)
