"""Filters of the mysql role: the account's password hash, which accounts a
password would change, and the server certificate's names
(flaskstack.stack.caching_sha2_hash, flaskstack.stack.accounts_with_other_password,
flaskstack.stack.subject_alt_name), and which member of a stopped replicated group
holds every transaction (flaskstack.stack.most_advanced_member)."""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.community.mysql.plugins.module_utils.implementations.mysql.hash import (
    _sha256_digest, mysql_sha256_password_hash)

# SHA-crypt's rounds in MySQL's sha256_password hashes ($5$<20-character salt>$<digest>).
SHA256_PASSWORD_ROUNDS = 5000


def flaskstack_caching_sha2_hash(password, salt):
    """The hash MySQL stores for a caching_sha2_password account, from the
    password and a fixed salt: what community.mysql's mysql_user stores for
    plugin_auth_string and salt (its own function). The users tasks compare and
    set the account's hash with it, so a rotation sets exactly what a later run
    expects."""
    if len(salt) != 20:
        raise AnsibleFilterError("flaskstack.stack.caching_sha2_hash: the salt must be 20 characters")
    return mysql_sha256_password_hash(password, salt)


def password_matches(authentication_string, plugin, password):
    """Whether an account's stored hash is the password's: True or False for
    the plugins whose hash this can compute (caching_sha2_password and
    sha256_password with the salt they store, mysql_native_password), None for
    any other. community.mysql's SHA-crypt digest serves both SHA-256 plugins."""
    stored = authentication_string or ""
    if plugin == "mysql_native_password":
        return stored == "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()
    if plugin == "caching_sha2_password" and stored.startswith("$A$005$") and len(stored) == 70:
        return mysql_sha256_password_hash(password, stored[7:27]) == stored
    if plugin == "sha256_password" and stored.startswith("$5$") and stored.count("$") == 3:
        salt = stored.split("$")[2]
        return stored == f"$5${salt}${_sha256_digest(password, salt, SHA256_PASSWORD_ROUNDS)}"
    return None


def flaskstack_accounts_with_other_password(accounts, password):
    """The accounts (rows of mysql.user with plugin and authentication_string)
    whose password is not this one, or may not be: a hash this cannot check
    counts as another password."""
    return [account for account in accounts
            if not password_matches(account.get("authentication_string"), account.get("plugin"), password)]


def flaskstack_subject_alt_name(name):
    """A certificate's subject alternative name for a name or address a server
    is reached by: 'IP:<address>' for an IPv4 or IPv6 address, else
    'DNS:<name>': a client checking an address matches only an IP entry, and a
    name only a DNS one."""
    try:
        return f"IP:{ipaddress.ip_address(name)}"
    except ValueError:
        return f"DNS:{name}"


def gtid_set(text):
    """A GTID set as MySQL prints it (@@gtid_executed: 'uuid:1-5:7,uuid2[:tag]:1-3',
    across lines) as {(uuid, tag): [(first, last), ...]}."""
    found = {}
    for member in "".join((text or "").split()).split(","):
        if not member:
            continue
        parts = member.split(":")
        source, tag = parts[0].lower(), ""
        for part in parts[1:]:
            if not part[:1].isdigit():
                # MySQL 8.3 and later: a tag names the transactions after it.
                tag = part.lower()
                continue
            first, _dash, last = part.partition("-")
            found.setdefault((source, tag), []).append((int(first), int(last or first)))
    return found


def gtid_subset(smaller, larger):
    """Whether every transaction of GTID set `smaller` is in `larger` (dicts of gtid_set)."""
    for key, intervals in smaller.items():
        covering = larger.get(key, [])
        for first, last in intervals:
            if not any(start <= first and last <= end for start, end in covering):
                return False
    return True


def flaskstack_most_advanced_member(executed):
    """The member to bring a stopped group back from: {host: @@gtid_executed}
    of the members reached, to the host whose transactions include every other
    member's. None when none does (members that diverged: an operator decides)."""
    sets = {host: gtid_set(text) for host, text in executed.items()}
    for host, candidate in sets.items():
        if all(gtid_subset(other, candidate) for other in sets.values()):
            return host
    return None


class FilterModule:
    def filters(self):
        return {"caching_sha2_hash": flaskstack_caching_sha2_hash,
                "accounts_with_other_password": flaskstack_accounts_with_other_password,
                "subject_alt_name": flaskstack_subject_alt_name,
                "most_advanced_member": flaskstack_most_advanced_member}
