"""Filters of the mysql role: the account's password hash and the server
certificate's names (flaskstack.stack.caching_sha2_hash, flaskstack.stack.subject_alt_name)."""
from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.community.mysql.plugins.module_utils.implementations.mysql.hash import (
    mysql_sha256_password_hash)


def flaskstack_caching_sha2_hash(password, salt):
    """The hash MySQL stores for a caching_sha2_password account, from the
    password and a fixed salt: what community.mysql's mysql_user stores for
    plugin_auth_string and salt (its own function). The users tasks compare and
    set the account's hash with it, so a rotation sets exactly what a later run
    expects."""
    if len(salt) != 20:
        raise AnsibleFilterError("flaskstack.stack.caching_sha2_hash: the salt must be 20 characters")
    return mysql_sha256_password_hash(password, salt)


def flaskstack_subject_alt_name(name):
    """A certificate's subject alternative name for a name or address a server
    is reached by: 'IP:<address>' for an IPv4 or IPv6 address, else
    'DNS:<name>': a client checking an address matches only an IP entry, and a
    name only a DNS one."""
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


class FilterModule:
    def filters(self):
        return {"caching_sha2_hash": flaskstack_caching_sha2_hash, "subject_alt_name": flaskstack_subject_alt_name}
