"""haproxy.cfg's server lists, built from the peers the stack's resolver finds."""
import pytest
from ansible_collections.flaskstack.stack.plugins.filter.haproxy import (
    haproxy_app_servers, haproxy_listener_budget, haproxy_mysql_servers, haproxy_server_line)


def test_mysql_servers_are_numbered_in_group_order_with_their_own_limits():
    databases = [{"name": "db1", "address": "10.0.0.1", "port": 3306, "local": False},
                 {"name": "db2", "address": "10.0.0.5", "port": "3307", "local": False}]
    check_ports = [{"name": "db1", "port": 9200}, {"name": "db2", "port": "9201"}]
    assert haproxy_mysql_servers(databases, {"db2": {"maxconn": "5", "maxqueue": 20}}, check_ports) == [
        {"name": "mysql1", "host": "db1", "address": "10.0.0.1", "port": 3306, "check_port": 9200},
        {"name": "mysql2", "host": "db2", "address": "10.0.0.5", "port": 3307, "check_port": 9201,
         "maxconn": 5, "maxqueue": 20}]


def test_a_local_database_is_one_loopback_server():
    assert haproxy_mysql_servers([{"name": "stack1", "address": "127.0.0.1", "port": 3306, "local": True}], {}) == [
        {"name": "mysql1", "host": "stack1", "address": "127.0.0.1", "port": 3306}]


def test_app_servers_are_one_per_port_of_each_host():
    apps = [{"name": "app1", "address": "10.0.0.3", "port": [8000, 8001]},
            {"name": "app2", "address": "10.0.0.4", "port": [9000]}]
    assert haproxy_app_servers(apps) == [
        {"name": "app1-8000", "address": "10.0.0.3", "port": 8000},
        {"name": "app1-8001", "address": "10.0.0.3", "port": 8001},
        {"name": "app2-9000", "address": "10.0.0.4", "port": 9000}]


TWO_SERVERS = [{"name": "mysql1"}, {"name": "mysql2", "maxconn": 30}]


def test_without_the_http_entry_point_the_mysql_listener_has_the_global_limit():
    assert haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, False, 50) == {
        "servers": 40, "mysql_listener": 100, "read_listener": 0, "http": 0, "admin": 0, "global": 100, "fits": True}


def test_the_http_entry_point_takes_its_own_share_and_leaves_the_rest_to_mysql():
    budget = haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 50)
    assert (budget["mysql_listener"], budget["http"], budget["fits"]) == (50, 50, True)
    # HTTP's share leaves the MySQL listener less than its servers may use.
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 70)["fits"]


def test_an_explicit_listener_limit_must_admit_the_servers_and_fit_the_global_one():
    assert haproxy_listener_budget(TWO_SERVERS, 10, 100, 40, True, 60)["fits"]
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 39, False, 0)["fits"]
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 50, True, 60)["fits"]


def test_the_reads_listener_takes_its_servers_maxconn_from_the_mysql_listeners_share():
    budget = haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 40, 0, 5)
    assert (budget["mysql_listener"], budget["read_listener"], budget["fits"]) == (50, 10, True)
    # Six per server more leaves the MySQL listener less than its servers may use.
    assert haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 40, 0, 10)["fits"]
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 40, 0, 11)["fits"]


def test_the_administration_listeners_take_their_share_too():
    budget = haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 50, 10)
    assert (budget["mysql_listener"], budget["http"], budget["admin"], budget["fits"]) == (40, 50, 10, True)
    # An explicit listener limit that leaves them no room does not fit.
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 45, True, 50, 10)["fits"]
    # One share more than the servers can spare.
    assert not haproxy_listener_budget(TWO_SERVERS, 10, 100, 0, True, 50, 11)["fits"]


def test_a_server_line_has_its_own_limits_and_check_or_the_listeners():
    server = {"name": "mysql1", "host": "db1", "address": "10.0.0.1", "port": 3307, "maxqueue": 20}
    assert haproxy_server_line(server, 3306, 10, 0, 9200, "2s") == (
        "mysql1 10.0.0.1:3307 maxconn 10 maxqueue 20 check port 9200 inter 2s")
    assert haproxy_server_line({"name": "mysql2", "address": "10.0.0.5", "maxconn": "5", "check_port": 9201},
                               3306, 10, 0, 9200, "2s") == "mysql2 10.0.0.5:3306 maxconn 5 check port 9201 inter 2s"
    assert haproxy_server_line(server, 3306, 10, 0, 9200) == "mysql1 10.0.0.1:3307 maxconn 10 maxqueue 20"


def test_a_unix_socket_server_has_no_port_and_is_checked_at_its_check_address():
    server = {"name": "mysql1", "address": "/run/mysqld/mysqld.sock", "port": 3306}
    assert haproxy_server_line(server, 3306, 10, 0, 9200) == "mysql1 /run/mysqld/mysqld.sock maxconn 10"
    assert haproxy_server_line({**server, "check_address": "127.0.0.1"}, 3306, 10, 0, 9200, "2s") == (
        "mysql1 /run/mysqld/mysqld.sock maxconn 10 check addr 127.0.0.1 port 9200 inter 2s")
    with pytest.raises(ValueError, match="needs check_address"):
        haproxy_server_line(server, 3306, 10, 0, 9200, "2s")
