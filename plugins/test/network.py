"""Jinja tests for the roles' input checks: addresses by Python's ipaddress
module rather than by patterns (`x is flaskstack.stack.ip_address`,
`x is flaskstack.stack.ip_network`), and ports (`x is flaskstack.stack.port`)."""
from __future__ import annotations

import ipaddress


def ip_address(value):
    """An IPv4 or IPv6 address, written as one ('10.0.0.1', 'fd00::1'): not a
    name, not a network, not a number."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip_network(value):
    """An IPv4 or IPv6 address, or a network as address/prefix length
    ('10.0.0.0/8', 'fd00::/8'; host bits may be set, as HAProxy and systemd
    allow): not a name, and no netmask written as an address."""
    if not isinstance(value, str):
        return False
    address, slash, prefix = value.partition("/")
    if slash and not (prefix.isascii() and prefix.isdigit()):
        return False
    try:
        ipaddress.ip_network(value if slash else address, strict=False)
    except ValueError:
        return False
    return True


def port(value):
    """A TCP port a service can listen on, 1 to 65535: an integer, or a string
    of digits (extra vars arrive as strings); not a bool, not a float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return False
        value = int(value)
    return isinstance(value, int) and 1 <= value <= 65535


class TestModule:
    def tests(self):
        return {"ip_address": ip_address, "ip_network": ip_network, "port": port}
