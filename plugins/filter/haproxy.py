"""Filters of the haproxy role: haproxy.cfg's server lines, built from the peers
flaskstack.stack.peers finds, and how the listeners share the global maxconn."""
from __future__ import annotations


def haproxy_mysql_servers(databases, limits=None, check_ports=None):
    """One server per database host, mysql1, mysql2... in the group's order, at
    the host's MySQL port, checked at its health-check port (check_ports: the
    same peers with that port), with the host's own limits from
    haproxy_server_limits (keyed by inventory name) where set; the others take
    the listener's defaults."""
    limits = limits or {}
    check_port = {peer["name"]: int(peer["port"]) for peer in check_ports or []}
    servers = []
    for index, database in enumerate(databases, start=1):
        server = {"name": f"mysql{index}", "host": database["name"], "address": database["address"],
                  "port": int(database["port"])}
        if database["name"] in check_port:
            server["check_port"] = check_port[database["name"]]
        server.update({key: int(value) for key, value in (limits.get(database["name"]) or {}).items()
                       if key in ("maxconn", "maxqueue")})
        servers.append(server)
    return servers


def haproxy_app_servers(apps):
    """One server per gunicorn instance: HOST-PORT for each port of each app host."""
    return [{"name": f"{app['name']}-{port}", "address": app["address"], "port": int(port)}
            for app in apps for port in app["port"]]


def haproxy_server_line(server, default_port, maxconn, maxqueue, check_port, check_interval=None):
    """A MySQL server's line after `server `: its name and where it is (host:port,
    or a path, MySQL's unix socket as seen from HAProxy's chroot), its limits
    (maxqueue 0: none), and its health check unless check_interval is None (at
    its host's check service, at check_port unless the server has its own; a
    socket's host needs check_address)."""
    address = server["address"]
    endpoint = address if address.startswith("/") else f"{address}:{server.get('port', default_port)}"
    words = [server["name"], endpoint, "maxconn", str(int(server.get("maxconn", maxconn)))]
    if int(server.get("maxqueue", maxqueue)) > 0:
        words += ["maxqueue", str(int(server.get("maxqueue", maxqueue)))]
    if check_interval is not None:
        words.append("check")
        if "check_address" in server:
            words += ["addr", server["check_address"]]
        elif address.startswith("/"):
            raise ValueError(f"server {server['name']} is a unix socket: its health check needs check_address")
        words += ["port", str(int(server.get("check_port", check_port))), "inter", str(check_interval)]
    return " ".join(words)


def haproxy_listener_budget(servers, server_maxconn, global_maxconn, listen_maxconn, http_enabled, http_maxconn,
                            admin_maxconn=0, read_server_maxconn=0):
    """How this proxy shares its global maxconn: the MySQL listener gets its own
    maxconn (haproxy_listen_maxconn, else what the other listeners leave of the
    global limit) and must admit every server's maxconn; the reads listener
    (read_server_maxconn per server, 0 when off) exactly its servers' maxconn;
    the HTTP entry point its own, so HTTP clients cannot take the MySQL
    listeners' share; and the administration listeners (stats page, metrics)
    theirs, counted together."""
    http = int(http_maxconn) if http_enabled else 0
    admin = int(admin_maxconn)
    reads = len(servers) * int(read_server_maxconn)
    listener = int(listen_maxconn) or int(global_maxconn) - http - admin - reads
    servers_total = sum(int(server.get("maxconn", server_maxconn)) for server in servers)
    return {"servers": servers_total, "mysql_listener": listener, "read_listener": reads, "http": http,
            "admin": admin, "global": int(global_maxconn),
            "fits": servers_total <= listener and listener + reads + http + admin <= int(global_maxconn)}


class FilterModule:
    def filters(self):
        return {"haproxy_mysql_servers": haproxy_mysql_servers, "haproxy_app_servers": haproxy_app_servers,
                "haproxy_listener_budget": haproxy_listener_budget, "haproxy_server_line": haproxy_server_line}
