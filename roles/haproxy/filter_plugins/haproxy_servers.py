"""Server lines for haproxy.cfg, built from the peers playbooks/filter_plugins/flaskstack.py finds."""


def haproxy_mysql_servers(databases, limits=None):
    """One server per database host, mysql1, mysql2... in the group's order, at
    the host's MySQL port, with the host's own limits from haproxy_server_limits
    (keyed by inventory name) where set; the others take the listener's defaults."""
    limits = limits or {}
    servers = []
    for index, database in enumerate(databases, start=1):
        server = {"name": f"mysql{index}", "address": database["address"], "port": int(database["port"])}
        server.update({key: int(value) for key, value in (limits.get(database["name"]) or {}).items()
                       if key in ("maxconn", "maxqueue")})
        servers.append(server)
    return servers


def haproxy_app_servers(apps):
    """One server per gunicorn instance: HOST-PORT for each port of each app host."""
    return [{"name": f"{app['name']}-{port}", "address": app["address"], "port": int(port)}
            for app in apps for port in app["port"]]


class FilterModule:
    def filters(self):
        return {"haproxy_mysql_servers": haproxy_mysql_servers, "haproxy_app_servers": haproxy_app_servers}
