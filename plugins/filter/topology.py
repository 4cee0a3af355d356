"""Where the stack's tiers find each other: the one rule, used by every role and
by playbooks/site.yml (as flaskstack.stack.peers and so on).

The inventory groups are the tiers: mysql, haproxy, flaskapp. A host talks to
the hosts of a peer tier. If it runs that tier itself, it uses its own copy over
loopback (the single-host layout); otherwise every host of the tier, at the
host's `flaskstack_address` when the inventory sets one, else the IPv4 address
of its default route (from its facts).
"""
from __future__ import annotations

import functools
import pathlib

import yaml
from ansible.errors import AnsibleFilterError

# The stack's tiers, in the order a request travels back from MySQL, and the
# tiers each one connects to or is connected from.
TIERS = ("mysql", "haproxy", "flaskapp")
PEER_TIERS = {"mysql": ("haproxy",), "haproxy": ("mysql", "flaskapp"), "flaskapp": ("haproxy",)}
LOOPBACK = "127.0.0.1"


def _address_or_none(host, hostvars):
    variables = hostvars[host]
    if variables.get("flaskstack_address"):
        return str(variables["flaskstack_address"])
    address = ((variables.get("ansible_facts") or {}).get("default_ipv4") or {}).get("address")
    return str(address) if address else None


def flaskstack_address(host, hostvars):
    """This host's address on the network the tiers share."""
    address = _address_or_none(host, hostvars)
    if address is None:
        raise AnsibleFilterError(
            f"flaskstack: no address for {host}: set its flaskstack_address in the inventory, "
            "or gather its facts (playbooks/site.yml does for hosts --limit left out)")
    return address


def _runs_locally(tier, host, groups):
    members = list(groups.get(tier) or [])
    return not members or host in members


def flaskstack_peers(tier, host, groups, hostvars, port_var=None, default_port=None):
    """The hosts of `tier` that `host` talks to: [{name, address, local, port}].
    With port_var, each peer's port is that variable of the peer (its host_vars
    or group_vars), else default_port."""
    if tier not in TIERS:
        raise AnsibleFilterError(f"flaskstack: unknown tier {tier!r}; the tiers are {', '.join(TIERS)}")
    local = _runs_locally(tier, host, groups)
    names = [host] if local else list(groups[tier])
    peers = []
    for name in names:
        peer = {"name": name, "local": local,
                "address": LOOPBACK if local else flaskstack_address(name, hostvars)}
        if port_var:
            peer["port"] = hostvars[name].get(port_var, default_port)
        peers.append(peer)
    return peers


def flaskstack_listen_address(tier, host, groups, hostvars):
    """Where this host listens for the hosts of `tier`: loopback when it runs
    that tier itself (they are the same host), else its own stack address."""
    return LOOPBACK if _runs_locally(tier, host, groups) else flaskstack_address(host, hostvars)


def flaskstack_crosses_hosts(groups):
    """Whether any connection of the stack leaves a host: an app host without
    the proxy, or a proxy host without MySQL. Several hosts that each run the
    whole stack (the single-host layout repeated) keep every byte at home."""
    return (any(not _runs_locally("haproxy", host, groups) for host in groups.get("flaskapp") or [])
            or any(not _runs_locally("mysql", host, groups) for host in groups.get("haproxy") or []))


def flaskstack_app_proxy_addresses(groups, hostvars):
    """Every address an app host connects to the proxy tier at, in order and
    once each: what a database host's certificate must name for the app to
    verify it, since the proxy passes TLS through (loopback where an app host
    runs the proxy too)."""
    addresses = []
    for app_host in groups.get("flaskapp") or []:
        for proxy in flaskstack_peers("haproxy", app_host, groups, hostvars):
            if proxy["address"] not in addresses:
                addresses.append(proxy["address"])
    return addresses


def flaskstack_unresolved_peers(host, groups, hostvars):
    """Hosts this host talks to whose address is not known yet (their facts were
    not gathered, as under --limit), the other members of its replicated group
    included: the site playbook gathers them first."""
    unresolved = []
    for tier in flaskstack_tiers(host, groups):
        for peer_tier in PEER_TIERS[tier]:
            if _runs_locally(peer_tier, host, groups):
                continue
            unresolved += [peer for peer in groups[peer_tier]
                           if peer not in unresolved and _address_or_none(peer, hostvars) is None]
    # A replicated group's members reach each other (seeds, accounts, IP filters).
    if "mysql" in flaskstack_tiers(host, groups):
        unresolved += [member for member in flaskstack_db_group(host, groups)
                       if member not in (host, *unresolved) and _address_or_none(member, hostvars) is None]
    return unresolved


def _connects_to(tier, host, groups):
    """The hosts of `tier` that `host` connects to: itself when it runs the tier."""
    return [host] if _runs_locally(tier, host, groups) else list(groups[tier])


def flaskstack_app_clients(host, groups):
    """The app hosts whose queries reach this database host, through the proxies
    they use: every app host on a stack split over hosts, the host alone where
    each host runs the whole stack (several single-host stacks in one inventory)."""
    return [app for app in groups.get("flaskapp") or []
            if any(host in _connects_to("mysql", proxy, groups) for proxy in _connects_to("haproxy", app, groups))]


def flaskstack_db_group(host, groups):
    """The database hosts that replicate one data set with this one: every
    database host behind the proxies this host serves (a proxy balancing
    several database hosts sends each connection to one of them, so they must
    hold the same data), in the inventory's order. This host alone where each
    host runs the whole stack, or no proxy serves it."""
    proxies = [proxy for proxy in groups.get("haproxy") or [] if host in _connects_to("mysql", proxy, groups)]
    behind = {database for proxy in proxies for database in _connects_to("mysql", proxy, groups)}
    return [database for database in groups.get("mysql") or [] if database in behind] or [host]


def flaskstack_tiers(host, groups):
    """The tiers this host runs, in the stack's order."""
    return [tier for tier in TIERS if host in (groups.get(tier) or [])]


# The roles of this collection, beside its plugins (a checkout or an installed copy alike).
ROLES = pathlib.Path(__file__).resolve().parents[2] / "roles"
# The role defaults the connection budget falls back on for hosts that do not set them.
BUDGET_DEFAULTS = {"haproxy": ("haproxy_server_maxconn", "haproxy_server_limits", "haproxy_read_listener_enabled",
                               "haproxy_read_server_maxconn"),
                   "mysql": ("mysql_max_connections", "mysql_admin_connections")}


@functools.lru_cache(maxsize=None)
def role_defaults(roles=ROLES):
    """{variable: default} of the budget's variables, read from the haproxy and
    mysql roles' defaults/main.yml: hostvars hold every variable but role
    defaults, and the budget counts hosts no play of this run touches."""
    found = {}
    for role, names in BUDGET_DEFAULTS.items():
        path = pathlib.Path(roles) / role / "defaults" / "main.yml"
        defaults = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name in names:
            value = defaults.get(name)
            if value is None or (isinstance(value, str) and "{{" in value):
                raise AnsibleFilterError(f"flaskstack: {path} must give {name} a literal default, not {value!r}")
            found[name] = value
    return found


def _proxy_demand(proxy, groups, hostvars, defaults):
    """{database host: maxconn} for the servers of one proxy host, from its
    variables (hostvars hold everything but role defaults, passed in): its
    MySQL listener's and, when on, its reads listener's."""
    variables = hostvars[proxy]
    maxconn = int(variables.get("haproxy_server_maxconn", defaults["haproxy_server_maxconn"]))
    reads = (int(variables.get("haproxy_read_server_maxconn", defaults["haproxy_read_server_maxconn"]))
             if _bool(variables.get("haproxy_read_listener_enabled", defaults["haproxy_read_listener_enabled"])) else 0)
    listed = variables.get("haproxy_backend_servers")
    if listed is not None and not isinstance(listed, str):
        demand = {}
        for server in listed:
            if not server.get("host"):
                raise AnsibleFilterError(
                    f"flaskstack: {proxy}'s haproxy_backend_servers entry {server.get('name')!r} names no "
                    "`host` (the database host's inventory name): the connection budget cannot count it")
            demand[server["host"]] = demand.get(server["host"], 0) + int(server.get("maxconn", maxconn)) + reads
        return demand
    limits = variables.get("haproxy_server_limits", defaults["haproxy_server_limits"]) or {}
    databases = [proxy] if _runs_locally("mysql", proxy, groups) else list(groups["mysql"])
    return {database: int((limits.get(database) or {}).get("maxconn", maxconn)) + reads for database in databases}


def _bool(value):
    """A variable's truth as Ansible reads it (a string from -e, 'true' or 'yes', counts)."""
    return value.strip().lower() in ("true", "yes", "on", "1") if isinstance(value, str) else bool(value)


def flaskstack_connection_budget(groups, hostvars, defaults=None):
    """The worst case each database host can be asked for: the sum over proxy
    hosts of their server's maxconn, as much again for their old workers (after
    a reload, an old worker keeps the connections it holds, up to its maxconn,
    until they close or hard-stop-after ends it, while the new one opens its
    own), plus one health-check login per proxy and room for administration;
    against the host's max_connections. One entry per database host: {host,
    max_connections, proxies: {proxy: maxconn}, draining, checks, admin, total,
    fits}. A host that does not set a variable has its role's default
    (role_defaults(), or `defaults` when given)."""
    defaults = {**role_defaults(), **(defaults or {})}
    demands = {proxy: _proxy_demand(proxy, groups, hostvars, defaults) for proxy in groups.get("haproxy") or []}
    budget = []
    for database in groups.get("mysql") or []:
        variables = hostvars[database]
        proxies = {proxy: demand[database] for proxy, demand in demands.items() if database in demand}
        entry = {
            "host": database,
            "max_connections": int(variables.get("mysql_max_connections", defaults["mysql_max_connections"])),
            "proxies": proxies,
            "draining": sum(proxies.values()),
            "checks": len(proxies),
            "admin": int(variables.get("mysql_admin_connections", defaults["mysql_admin_connections"])),
        }
        entry["total"] = sum(proxies.values()) + entry["draining"] + entry["checks"] + entry["admin"]
        entry["fits"] = entry["total"] <= entry["max_connections"]
        budget.append(entry)
    return budget


def flaskstack_budget_line(entry):
    """One database host's budget, as the run prints it."""
    proxies = " + ".join(f"{count} ({proxy})" for proxy, count in entry["proxies"].items()) or "0"
    verdict = "fits" if entry["fits"] else "EXCEEDS"
    return (f"{entry['host']}: servers' maxconn {proxies} + old workers' {entry['draining']} after a reload + "
            f"health checks {entry['checks']} + "
            f"administration {entry['admin']} = {entry['total']}, {verdict} max_connections "
            f"{entry['max_connections']}")


class FilterModule:
    def filters(self):
        return {
            "address": flaskstack_address,
            "peers": flaskstack_peers,
            "listen_address": flaskstack_listen_address,
            "unresolved_peers": flaskstack_unresolved_peers,
            "app_proxy_addresses": flaskstack_app_proxy_addresses,
            "crosses_hosts": flaskstack_crosses_hosts,
            "tiers": flaskstack_tiers,
            "app_clients": flaskstack_app_clients,
            "db_group": flaskstack_db_group,
            "connection_budget": flaskstack_connection_budget,
            "budget_line": flaskstack_budget_line,
        }
