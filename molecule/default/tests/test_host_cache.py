"""MySQL's host cache and the health checks, on both flavours: with name
resolution on and max_connect_errors small, an hour's worth of checks leaves the
proxy host unblocked, while a few connections that only read MySQL's greeting
(what a check of MySQL's own port would make) get it blocked.

MySQL keeps no host-cache entry for a client at 127.0.0.1, so on the stack's
single-host layout the proxy could never be blocked and the test could not
fail. For the test, HAProxy reaches MySQL at the host's own address instead, a
layout users can choose with variables (MySQL bound there, the app account for
that address, a hand-listed server): the rerun below sets it, and leaving
restores the inventory's. The proxy on a host of its own changes nothing here:
MySQL keys its host cache by the client's address either way."""
import contextlib
import time

import pytest

from flaskstack_testlib import LISTEN_NAME, MYSQL_PORT, wait_for

# Once per flavour: the fixture's rerun restarts MySQL twice.
pytestmark = pytest.mark.platform_independent

# An hour of checks at the default 2 s interval, compressed into half a minute:
# 600 times max_connect_errors, each check a login that must count as no error.
AN_HOUR_OF_CHECKS = 1800
CHECK_INTERVAL = "1ms"
MAX_CONNECT_ERRORS = 3
BLOCKED = "1129"
# A connection that reads MySQL's greeting and hangs up without logging in: what
# a check that completes connections to MySQL's port does (a tcp-check reading
# the greeting), and a failed handshake to the host cache.
GREETING_ONLY = ("import socket, sys\n"
                 "with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:\n"
                 "    s.recv(1024)\n")


def host_cache_errors(stack, address):
    """The address's handshake and connect errors in MySQL's host cache, or
    None when MySQL keeps no entry for it. MariaDB shows its host cache only
    with performance_schema on, which it is not by default: "unseen" there."""
    if stack.root_sql("SELECT @@performance_schema") != "1":
        return "unseen"
    row = stack.root_sql("SELECT COUNT_HANDSHAKE_ERRORS, SUM_CONNECT_ERRORS FROM performance_schema.host_cache "
                         f"WHERE IP = '{address}'")
    return tuple(map(int, row.split())) if row.strip() else None


def forget_blocked_hosts(stack):
    """Empty the host cache: Oracle MySQL 9 has no FLUSH HOSTS any more; MariaDB
    has no writable performance_schema.host_cache."""
    stack.root_sql("TRUNCATE TABLE performance_schema.host_cache" if stack.flavor == "mysql" else "FLUSH HOSTS")


@pytest.fixture(scope="module")
def proxied_by_address(stack):
    """The stack with HAProxy reaching MySQL at the host's own address, MySQL
    resolving client names and blocking a host after MAX_CONNECT_ERRORS failed
    handshakes, and checks every CHECK_INTERVAL. Yields that address.
    Also the proof that the role's bind address, with its port and name
    resolution, wins over the package's loopback default, there and back."""
    packaged = stack.host.check_output(
        "grep -rhE '^[[:space:]]*bind[-_]address' /etc/mysql --include=*.cnf --exclude=zz-flaskstack.cnf")
    assert "127.0.0.1" in packaged, "the package no longer sets a loopback default: this proves nothing"
    address = stack.host.check_output("ip -4 -o route get 192.0.2.1").split(" src ")[1].split()[0]
    with contextlib.ExitStack() as restore:
        # Whatever happens, no blocked host is left behind for the next tests.
        restore.callback(forget_blocked_hosts, stack)
        restore.enter_context(stack.reconfigured(
            "--tags", "mysql,haproxy", mysql_bind_address=address, mysql_client_addresses=[address],
            mysql_skip_name_resolve=False, mysql_max_connect_errors=MAX_CONNECT_ERRORS,
            haproxy_backend_servers=[{"name": "mysql1", "address": address, "host": stack.name}],
            # All three intervals: a failed check among thousands would otherwise
            # slow the rest to the transition's or the DOWN server's pace.
            haproxy_server_check_interval=CHECK_INTERVAL, haproxy_server_check_fast_interval=CHECK_INTERVAL,
            haproxy_server_check_down_interval=CHECK_INTERVAL))
        assert wait_for(lambda: stack.server()["status"] == "UP", 30) is not None, \
            f"HAProxy's server at {address} did not come UP: {stack.server()}"
        assert stack.root_sql("SELECT @@bind_address, @@port, @@skip_name_resolve").split() == \
            [address, str(MYSQL_PORT), "0"]
        assert stack.listening_addresses(MYSQL_PORT) == {address}
        yield address
    # The inventory's values again: loopback only, and HAProxy's server back UP.
    assert stack.root_sql("SELECT @@bind_address, @@skip_name_resolve").split() == ["127.0.0.1", "1"]
    assert stack.listening_addresses(MYSQL_PORT) == {"127.0.0.1"}
    assert wait_for(lambda: stack.server()["status"] == "UP", 30) is not None, stack.server()


def test_an_hour_of_health_checks_leaves_the_proxy_host_unblocked(stack, observe, proxied_by_address):
    address = proxied_by_address
    assert stack.root_sql("SELECT @@skip_name_resolve, @@max_connect_errors, @@host_cache_size > 0").split() == \
        ["0", str(MAX_CONNECT_ERRORS), "1"]
    assert stack.server()["addr"] == f"{address}:{MYSQL_PORT}"
    # The proxy's logins come from the host's address, which MySQL tracks (unlike 127.0.0.1).
    assert stack.app_sql("SELECT 1").strip() == "1"
    assert host_cache_errors(stack, address) in ((0, 0), "unseen"), "the proxy's address is not in the host cache"
    aborted = stack.mysql_status("Aborted_connects")

    try:
        began = time.monotonic()
        assert wait_for(lambda: stack.login_check(address)[1] >= AN_HOUR_OF_CHECKS, 300, interval=5) is not None, \
            f"fewer than {AN_HOUR_OF_CHECKS} checks at {CHECK_INTERVAL} in 5 minutes"
        _, checks = stack.login_check(address)
        seconds = time.monotonic() - began

        assert host_cache_errors(stack, address) in ((0, 0), "unseen")
        assert stack.mysql_status("Aborted_connects") == aborted, "a check counted as an aborted connect"
        # A blocked host refuses every login for good; a login lost to a check that
        # timed out under load (the server DOWN for a moment) succeeds again soon.
        logins = []
        waited = wait_for(lambda: logins.append(stack.app_sql_result("SELECT 1")) or logins[-1].rc == 0, 10)
        failures = [login.stderr.strip() for login in logins if login.rc != 0]
        observe(f"[{stack.name}] {stack.flavor}, skip_name_resolve off, max_connect_errors {MAX_CONNECT_ERRORS}: "
                f"{checks} checks of {address} in {seconds:.0f} s (about {checks * 2 / 3600:.1f} h at 2 s), "
                f"then a new login through HAProxy: {'ok' if waited is not None else failures[-1]}"
                + (f" after {len(failures)} failed ({failures[0]})" if failures else ""))
        assert waited is not None, f"no login through HAProxy within 10 s: {failures[-3:]}"
        assert not [failure for failure in failures if BLOCKED in failure], failures
        # One check in thousands may time out on a loaded machine (L7TOUT, seen in CI);
        # a blocked host would fail every check (L7STS) and never come back to L7OK.
        statuses = []
        assert wait_for(lambda: statuses.append(stack.server()["check_status"].lstrip("* ")) or statuses[-1] == "L7OK",
                        15) is not None, f"the checks did not pass again within 15 s: {statuses[-5:]}"
    finally:
        # Counted: the checks go back to the inventory's pace with the fixture's
        # rerun; until then they would only load the machine (a core's worth).
        stack.haproxy(f"disable health {LISTEN_NAME}/mysql1")


def test_the_host_cache_blocks_the_proxy_after_failed_handshakes(stack, proxied_by_address):
    """What the checks would do if they completed connections to MySQL's port
    without logging in: the premise of the test above, so that it can fail."""
    address = proxied_by_address
    for _ in range(MAX_CONNECT_ERRORS):
        stack.host.check_output("python3 -c %s %s %s", GREETING_ONLY, address, str(MYSQL_PORT))
    blocked = stack.app_sql_result("SELECT 1")
    assert blocked.rc != 0 and BLOCKED in blocked.stderr, (blocked.rc, blocked.stdout, blocked.stderr)
    forget_blocked_hosts(stack)
    assert stack.app_sql("SELECT 1").strip() == "1"
