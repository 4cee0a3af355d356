"""The stack's one rule for where tiers find each other
(plugins/filter/topology.py), on the inventories users write."""
import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.flaskstack.stack.plugins.filter.topology import (
    ROLES, flaskstack_address, flaskstack_app_clients, flaskstack_app_proxy_addresses, flaskstack_budget_line, flaskstack_connection_budget,
    flaskstack_crosses_hosts, flaskstack_db_group, flaskstack_listen_address, flaskstack_peers, flaskstack_tiers, flaskstack_unresolved_peers,
    role_defaults)


def facts(address):
    return {"ansible_facts": {"default_ipv4": {"address": address}}}


SINGLE_HOST = {"groups": {"mysql": ["stack1"], "haproxy": ["stack1"], "flaskapp": ["stack1"]},
               "hostvars": {"stack1": facts("10.0.0.9")}}
FOUR_TIERS = {"groups": {"mysql": ["db1"], "haproxy": ["lb1"], "flaskapp": ["app1", "app2"]},
              "hostvars": {"db1": facts("10.0.0.1"), "lb1": facts("10.0.0.2"),
                           "app1": facts("10.0.0.3"), "app2": facts("10.0.0.4")}}


def peers(tier, host, layout, **kwargs):
    return flaskstack_peers(tier, host, layout["groups"], layout["hostvars"], **kwargs)


@pytest.mark.parametrize("tier", ["mysql", "haproxy", "flaskapp"])
def test_single_host_uses_every_tier_over_loopback(tier):
    assert peers(tier, "stack1", SINGLE_HOST) == [{"name": "stack1", "address": "127.0.0.1", "local": True}]


def test_four_tiers_reach_each_other_at_their_default_ipv4_addresses():
    assert peers("haproxy", "db1", FOUR_TIERS) == [{"name": "lb1", "address": "10.0.0.2", "local": False}]
    assert peers("mysql", "lb1", FOUR_TIERS) == [{"name": "db1", "address": "10.0.0.1", "local": False}]
    assert [peer["address"] for peer in peers("flaskapp", "lb1", FOUR_TIERS)] == ["10.0.0.3", "10.0.0.4"]
    assert peers("haproxy", "app2", FOUR_TIERS)[0]["address"] == "10.0.0.2"
    assert flaskstack_address("app1", FOUR_TIERS["hostvars"]) == "10.0.0.3"


def test_a_host_listens_on_loopback_for_its_own_tier_else_on_its_stack_address():
    assert flaskstack_listen_address("haproxy", "stack1", SINGLE_HOST["groups"], SINGLE_HOST["hostvars"]) == "127.0.0.1"
    assert flaskstack_listen_address("haproxy", "db1", FOUR_TIERS["groups"], FOUR_TIERS["hostvars"]) == "10.0.0.1"
    assert flaskstack_listen_address("flaskapp", "lb1", FOUR_TIERS["groups"], FOUR_TIERS["hostvars"]) == "10.0.0.2"
    assert flaskstack_listen_address("haproxy", "app1", FOUR_TIERS["groups"], FOUR_TIERS["hostvars"]) == "10.0.0.3"


def test_explicit_flaskstack_address_wins_over_facts_and_needs_none():
    hostvars = {**FOUR_TIERS["hostvars"], "db1": {**facts("10.0.0.1"), "flaskstack_address": "192.168.5.1"},
                "app1": {"flaskstack_address": "192.168.5.3"}}
    layout = {"groups": FOUR_TIERS["groups"], "hostvars": hostvars}
    assert peers("mysql", "lb1", layout)[0]["address"] == "192.168.5.1"
    assert peers("flaskapp", "lb1", layout)[0]["address"] == "192.168.5.3"
    assert flaskstack_unresolved_peers("lb1", layout["groups"], hostvars) == []


def test_a_host_that_runs_the_peer_tier_uses_only_its_own_copy():
    # A proxy on a database host, beside another database host: its MySQL only.
    groups = {"mysql": ["db1", "db2"], "haproxy": ["db1"], "flaskapp": ["app1"]}
    hostvars = {"db1": facts("10.0.0.1"), "db2": facts("10.0.0.5"), "app1": facts("10.0.0.3")}
    assert flaskstack_peers("mysql", "db1", groups, hostvars) == [
        {"name": "db1", "address": "127.0.0.1", "local": True}]
    assert flaskstack_peers("haproxy", "db2", groups, hostvars)[0]["address"] == "10.0.0.1"


def test_an_empty_or_missing_peer_group_means_this_host():
    groups = {"mysql": ["solo"], "haproxy": []}
    assert flaskstack_peers("haproxy", "solo", groups, {"solo": {}})[0]["local"] is True
    assert flaskstack_peers("flaskapp", "solo", groups, {"solo": {}})[0]["local"] is True


def test_ports_come_from_each_peer_or_the_default():
    hostvars = {**FOUR_TIERS["hostvars"], "app2": {**facts("10.0.0.4"), "flaskapp_ports": [9000]}}
    found = flaskstack_peers("flaskapp", "lb1", FOUR_TIERS["groups"], hostvars,
                             port_var="flaskapp_ports", default_port=[8000, 8001])
    assert [(peer["name"], peer["port"]) for peer in found] == [("app1", [8000, 8001]), ("app2", [9000])]
    local = peers("mysql", "stack1", SINGLE_HOST, port_var="mysql_port", default_port=3306)
    assert local[0]["port"] == 3306


def test_limit_leaves_peers_without_facts_which_the_playbook_gathers_first():
    # --limit lb1: the other hosts' facts were never gathered.
    hostvars = {"db1": {}, "lb1": facts("10.0.0.2"), "app1": {}, "app2": {"flaskstack_address": "10.0.0.4"}}
    groups = FOUR_TIERS["groups"]
    assert flaskstack_unresolved_peers("lb1", groups, hostvars) == ["db1", "app1"]
    assert flaskstack_unresolved_peers("app2", groups, hostvars) == []  # lb1 has facts
    assert flaskstack_unresolved_peers("db1", groups, {**hostvars, "lb1": {}}) == ["lb1"]
    with pytest.raises(AnsibleFilterError, match="no address for db1: set its flaskstack_address"):
        flaskstack_peers("mysql", "lb1", groups, hostvars)


def test_limit_to_one_member_gathers_the_other_members_too():
    groups = {"mysql": ["db1", "db2", "db3"], "haproxy": ["lb1"], "flaskapp": ["app1"]}
    hostvars = {"db1": facts("10.0.0.1"), "db2": {}, "db3": {"flaskstack_address": "10.0.0.3"}, "lb1": {}}
    assert flaskstack_unresolved_peers("db1", groups, hostvars) == ["lb1", "db2"]


def test_single_host_needs_no_peer_facts():
    assert flaskstack_unresolved_peers("stack1", SINGLE_HOST["groups"], {"stack1": {}}) == []


def test_tiers_are_listed_in_the_stacks_order():
    assert flaskstack_tiers("stack1", SINGLE_HOST["groups"]) == ["mysql", "haproxy", "flaskapp"]
    assert flaskstack_tiers("app1", FOUR_TIERS["groups"]) == ["flaskapp"]
    with pytest.raises(AnsibleFilterError, match="unknown tier 'web'"):
        flaskstack_peers("web", "app1", FOUR_TIERS["groups"], FOUR_TIERS["hostvars"])


def test_a_database_hosts_app_clients_are_the_app_hosts_its_proxies_serve():
    # Split over hosts: every app host reaches db1 through lb1.
    assert flaskstack_app_clients("db1", FOUR_TIERS["groups"]) == ["app1", "app2"]
    # Several whole stacks in one inventory: each database serves its own host alone.
    stacks = {tier: ["stack1", "stack2"] for tier in ("mysql", "haproxy", "flaskapp")}
    assert flaskstack_app_clients("stack2", stacks) == ["stack2"]
    # Two proxy hosts, each in front of both databases: both app hosts reach each database.
    two_proxies = {"mysql": ["db1", "db2"], "haproxy": ["lb1", "lb2"], "flaskapp": ["app1", "app2"]}
    assert flaskstack_app_clients("db2", two_proxies) == ["app1", "app2"]
    # A proxy on each app host, in front of the one database.
    local_proxies = {"mysql": ["db1"], "haproxy": ["app1", "app2"], "flaskapp": ["app1", "app2"]}
    assert flaskstack_app_clients("db1", local_proxies) == ["app1", "app2"]


def test_the_database_hosts_behind_one_proxy_form_one_group():
    three = {"mysql": ["db1", "db2", "db3"], "haproxy": ["lb1"], "flaskapp": ["app1"]}
    assert [flaskstack_db_group(host, three) for host in three["mysql"]] == [["db1", "db2", "db3"]] * 3
    # One database host: a group of one, which replicates nothing.
    assert flaskstack_db_group("db1", FOUR_TIERS["groups"]) == ["db1"]
    # Several whole stacks in one inventory: each database is its own.
    stacks = {tier: ["stack1", "stack2"] for tier in ("mysql", "haproxy", "flaskapp")}
    assert flaskstack_db_group("stack2", stacks) == ["stack2"]
    # A proxy on each database host and a separate one in front of both: the shared proxy joins them.
    mixed = {"mysql": ["db1", "db2"], "haproxy": ["db1", "lb1"], "flaskapp": ["app1"]}
    assert flaskstack_db_group("db1", mixed) == ["db1", "db2"]
    # No proxy tier at all: the host alone.
    assert flaskstack_db_group("db1", {"mysql": ["db1", "db2"]}) == ["db1"]


def budget(groups, hostvars):
    # Defaults as the roles' (server maxconn 10, no per-host limits, 151 connections, 5 for administration),
    # stated here so that the figures below do not move with them.
    return flaskstack_connection_budget(groups, hostvars, defaults={
        "haproxy_server_maxconn": 10, "haproxy_server_limits": {},
        "mysql_max_connections": 151, "mysql_admin_connections": 5})


def test_the_budget_reads_its_defaults_from_the_roles_beside_the_plugin():
    """The collection's own haproxy and mysql roles, wherever it lives (a
    checkout, or installed): what a host that does not set them gets."""
    project = pathlib.Path(__file__).resolve().parents[4]
    assert ROLES.resolve() == (project / "roles").resolve()
    haproxy = yaml.safe_load((project / "roles/haproxy/defaults/main.yml").read_text())
    mysql = yaml.safe_load((project / "roles/mysql/defaults/main.yml").read_text())
    assert role_defaults() == {
        "haproxy_server_maxconn": haproxy["haproxy_server_maxconn"], "haproxy_server_limits": haproxy["haproxy_server_limits"],
        "haproxy_read_listener_enabled": haproxy["haproxy_read_listener_enabled"],
        "haproxy_read_server_maxconn": haproxy["haproxy_read_server_maxconn"],
        "mysql_max_connections": mysql["mysql_max_connections"], "mysql_admin_connections": mysql["mysql_admin_connections"]}
    [entry] = flaskstack_connection_budget(SINGLE_HOST["groups"], SINGLE_HOST["hostvars"])
    assert (entry["max_connections"], entry["admin"], entry["proxies"]) == (
        mysql["mysql_max_connections"], mysql["mysql_admin_connections"], {"stack1": haproxy["haproxy_server_maxconn"]})


def test_a_templated_budget_default_is_refused(tmp_path):
    for role, text in (("haproxy", "haproxy_server_maxconn: '{{ x }}'\nhaproxy_server_limits: {}\n"),
                       ("mysql", "mysql_max_connections: 151\nmysql_admin_connections: 5\n")):
        (tmp_path / role / "defaults").mkdir(parents=True)
        (tmp_path / role / "defaults" / "main.yml").write_text(text)
    with pytest.raises(AnsibleFilterError, match="literal default"):
        role_defaults.__wrapped__(tmp_path)


def test_the_budget_of_one_host_counts_its_own_proxy_and_its_old_worker():
    [entry] = budget(SINGLE_HOST["groups"], SINGLE_HOST["hostvars"])
    assert entry == {"host": "stack1", "max_connections": 151, "proxies": {"stack1": 10}, "draining": 10,
                     "checks": 1, "admin": 5, "total": 26, "fits": True}
    assert flaskstack_budget_line(entry) == (
        "stack1: servers' maxconn 10 (stack1) + old workers' 10 after a reload + health checks 1 + "
        "administration 5 = 26, fits max_connections 151")


def test_every_proxy_host_counts_against_every_database_it_serves():
    groups = {"mysql": ["db1", "db2"], "haproxy": ["lb1", "lb2"], "flaskapp": ["app1"]}
    hostvars = {"db1": {"mysql_max_connections": 67}, "db2": {},
                "lb1": {"haproxy_server_maxconn": 20, "haproxy_server_limits": {"db2": {"maxconn": 5}}},
                "lb2": {}}
    db1, db2 = budget(groups, hostvars)
    assert (db1["proxies"], db1["total"], db1["fits"]) == ({"lb1": 20, "lb2": 10}, 67, True)
    assert (db2["proxies"], db2["total"]) == ({"lb1": 5, "lb2": 10}, 37)
    hostvars["lb2"]["haproxy_server_maxconn"] = 11
    db1 = budget(groups, hostvars)[0]
    assert (db1["total"], db1["fits"]) == (69, False)
    assert flaskstack_budget_line(db1).endswith("= 69, EXCEEDS max_connections 67")


def test_a_reads_listener_counts_against_every_member_it_may_use():
    groups = {"mysql": ["db1", "db2", "db3"], "haproxy": ["lb1"], "flaskapp": ["app1"]}
    # From -e, a string: Ansible's truth.
    hostvars = {"db1": {}, "db2": {}, "db3": {},
                "lb1": {"haproxy_read_listener_enabled": "true", "haproxy_read_server_maxconn": 7}}
    for entry in budget(groups, hostvars):
        assert (entry["proxies"], entry["draining"], entry["total"]) == ({"lb1": 17}, 17, 17 + 17 + 1 + 5)
    hostvars["lb1"]["haproxy_read_listener_enabled"] = False
    assert budget(groups, hostvars)[0]["proxies"] == {"lb1": 10}


def test_a_proxy_on_a_database_host_counts_only_against_its_own_database():
    groups = {"mysql": ["db1", "db2"], "haproxy": ["db1"], "flaskapp": ["app1"]}
    db1, db2 = budget(groups, {"db1": {}, "db2": {}})
    assert (db1["proxies"], db2["proxies"], db2["total"]) == ({"db1": 10}, {}, 5)
    assert db1["total"] == 10 + 10 + 1 + 5


def test_servers_listed_by_hand_count_against_the_host_they_name():
    groups = {"mysql": ["db1"], "haproxy": ["lb1"], "flaskapp": ["app1"]}
    listed = [{"name": "a", "host": "db1", "maxconn": 7}, {"name": "b", "host": "db1"}]
    [db1] = budget(groups, {"db1": {}, "lb1": {"haproxy_backend_servers": listed}})
    assert db1["proxies"] == {"lb1": 17}
    with pytest.raises(AnsibleFilterError, match="names no `host`"):
        budget(groups, {"db1": {}, "lb1": {"haproxy_backend_servers": [{"name": "a"}]}})


def test_certificates_name_every_address_the_app_hosts_reach_a_proxy_at():
    assert flaskstack_app_proxy_addresses(FOUR_TIERS["groups"], FOUR_TIERS["hostvars"]) == ["10.0.0.2"]
    assert flaskstack_app_proxy_addresses(SINGLE_HOST["groups"], SINGLE_HOST["hostvars"]) == ["127.0.0.1"]
    # An app on the proxy host uses loopback, another app host the proxy's address.
    groups = {"mysql": ["db1"], "haproxy": ["lb1"], "flaskapp": ["lb1", "app2"]}
    assert flaskstack_app_proxy_addresses(groups, FOUR_TIERS["hostvars"]) == ["127.0.0.1", "10.0.0.2"]


def test_connections_cross_hosts_only_where_a_tier_lacks_its_peer():
    assert flaskstack_crosses_hosts(FOUR_TIERS["groups"])
    assert not flaskstack_crosses_hosts(SINGLE_HOST["groups"])
    # Several hosts, each a whole stack (the single-host scenario's three platforms).
    assert not flaskstack_crosses_hosts({tier: ["a", "b", "c"] for tier in ("mysql", "haproxy", "flaskapp")})
    # The proxy on the app hosts, MySQL apart; or an app host without a proxy.
    assert flaskstack_crosses_hosts({"mysql": ["db1"], "haproxy": ["app1"], "flaskapp": ["app1"]})
    assert flaskstack_crosses_hosts({"mysql": ["s1"], "haproxy": ["s1"], "flaskapp": ["s1", "app2"]})
