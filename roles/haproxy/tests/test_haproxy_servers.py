"""haproxy.cfg's server lists, built from the peers the stack's resolver finds."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "filter_plugins"))
from haproxy_servers import haproxy_app_servers, haproxy_mysql_servers  # noqa: E402


def test_mysql_servers_are_numbered_in_group_order_with_their_own_limits():
    databases = [{"name": "db1", "address": "10.0.0.1", "port": 3306, "local": False},
                 {"name": "db2", "address": "10.0.0.5", "port": "3307", "local": False}]
    assert haproxy_mysql_servers(databases, {"db2": {"maxconn": "5", "maxqueue": 20}}) == [
        {"name": "mysql1", "address": "10.0.0.1", "port": 3306},
        {"name": "mysql2", "address": "10.0.0.5", "port": 3307, "maxconn": 5, "maxqueue": 20}]


def test_a_local_database_is_one_loopback_server():
    assert haproxy_mysql_servers([{"name": "stack1", "address": "127.0.0.1", "port": 3306, "local": True}], {}) == [
        {"name": "mysql1", "address": "127.0.0.1", "port": 3306}]


def test_app_servers_are_one_per_port_of_each_host():
    apps = [{"name": "app1", "address": "10.0.0.3", "port": [8000, 8001]},
            {"name": "app2", "address": "10.0.0.4", "port": [9000]}]
    assert haproxy_app_servers(apps) == [
        {"name": "app1-8000", "address": "10.0.0.3", "port": 8000},
        {"name": "app1-8001", "address": "10.0.0.3", "port": 8001},
        {"name": "app2-9000", "address": "10.0.0.4", "port": 9000}]
