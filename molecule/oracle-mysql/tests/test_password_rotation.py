"""A new password for the app's account, by rerun, under steady traffic, with no
failed request: Oracle MySQL keeps the old password valid as the account's
second one (RETAIN CURRENT PASSWORD) until the app runs the new one, then the
playbook's last play discards it. A run cut off in between leaves a stack that
works, refuses another new password (which would discard the old one the app
still runs), and the next run finishes the rotation.

The traffic goes through HAProxy's HTTP entry point (on for these tests, port
8080), which routes around the instance being restarted and retries a request
an instance dropped, so a request's success alone would not prove the password
carried it: MySQL's own counters do. Through the rotation, the app's account
logs in again and again (concurrent queries against pools of one, and the
restarts) and MySQL refuses no login."""
import secrets

import pytest

from flaskstack_testlib import (APP_ENV_FILE, DB_USER, assert_succeeded, changed_tasks, deployed_password,
                                failure_message, failure_text, vault_args, wait_for)

HTTP_ENTRY = {"haproxy_http_enabled": True, "haproxy_http_bind_port": 8080}
HTTP_NAME = "flaskapp"
OLD_ENV = "/root/flaskstack-rotation-old.env"
RETAIN = "mysql : Keep the current password as a second one while the app moves to the new one"
DISCARD = "mysql : Discard the old password"
RESTART = "flaskapp : Restart the app"
SECOND_PASSWORDS = ("SELECT COUNT(*) FROM mysql.user WHERE "
                    "JSON_EXTRACT(User_attributes, '$.additional_password') IS NOT NULL")
APP_LOGINS = f"SELECT COALESCE(SUM(TOTAL_CONNECTIONS), 0) FROM performance_schema.accounts WHERE USER = '{DB_USER}'"


def logins(stack):
    """(the app account's logins, logins MySQL refused), as MySQL counts them."""
    return int(stack.root_sql(APP_LOGINS)), stack.mysql_status("Aborted_connects")


def rerun_under_traffic(stack, *args, **extra_vars):
    """A rerun while three streams of 0.2 s queries go through the HTTP entry
    point (two instances with pools of one: an instance often runs two at once,
    and the second logs in anew): (the run, the reads' result, the app's logins
    meanwhile, logins MySQL refused meanwhile)."""
    logins_before, refused_before = logins(stack)
    with stack.steady_reads(ports=[8080], streams=3, path="/sleep/0.2") as reads:
        run = stack.rerun(*args, **HTTP_ENTRY, **extra_vars)
    logins_after, refused_after = logins(stack)
    return run, reads, logins_after - logins_before, refused_after - refused_before


def logs_in(stack, env_file):
    """Whether the app's account logs in through HAProxy with the password of this environment file."""
    result = stack.app_sql_result("SELECT 1", env_file=env_file)
    assert result.rc == 0 or "1045" in result.stderr, result.stderr
    return result.rc == 0


def instances_up(stack):
    return sum(1 for (proxy, server), line in stack.stats().items()
               if proxy == HTTP_NAME and server not in ("FRONTEND", "BACKEND") and line["status"] == "UP")


def as_the_inventory_has_it(stack, password):
    """The app runs the inventory's password, MySQL keeps no second one, and the
    account is on caching_sha2_password: what the module's tests leave when they pass."""
    plugins = stack.root_sql(f"SELECT DISTINCT plugin FROM mysql.user WHERE User = '{DB_USER}'")
    return (deployed_password(stack) == password and stack.root_sql(SECOND_PASSWORDS).strip() == "0"
            and plugins == "caching_sha2_password")


@pytest.fixture(scope="module")
def http_entry(stack):
    """HAProxy's HTTP entry point in front of both instances; leaving turns it
    off (--tags haproxy). A test that stopped half-way (another password, a
    second one kept, another plugin) gets the whole playbook with the
    inventory's values first."""
    password = deployed_password(stack)
    with stack.reconfigured("--tags", "haproxy", **HTTP_ENTRY):
        assert wait_for(lambda: instances_up(stack) == 2, timeout=20) is not None
        stack.host.check_output("install -m 0600 %s %s", APP_ENV_FILE, OLD_ENV)
        try:
            yield
        finally:
            stack.host.check_output("rm -f %s", OLD_ENV)
            if not as_the_inventory_has_it(stack, password):
                assert_succeeded(stack.rerun(**HTTP_ENTRY))


def test_a_new_password_reaches_the_app_with_no_failed_request(stack, http_entry, observe, tmp_path):
    new_password = "rotated" + secrets.token_hex(12)
    # From an ansible-vault file, as users keep it, and never printed, even with -v --diff
    # (on this flavour, this test proves what the suite's vaulted-password test does).
    vaulted = ["-v", "--diff", *vault_args(tmp_path, vault_flaskstack_db_password=new_password)]
    # Cut off right after MySQL took the new password: both log in, the app still runs the old one.
    output, cut = stack.interrupted_rerun(*vaulted, **HTTP_ENTRY, after_change_of=RETAIN)
    assert cut, output[-3000:]
    assert new_password not in output
    assert logs_in(stack, OLD_ENV)
    assert stack.http("/todos").status == 200
    assert stack.root_sql(SECOND_PASSWORDS).strip() == "1"

    # A second change now would discard the old password, which the app still
    # runs (MySQL keeps two at most): refused before any change.
    another = tmp_path / "another"
    another.mkdir()
    refused = stack.rerun("--tags", "mysql", *vault_args(another, vault_flaskstack_db_password="another" + new_password))
    assert refused.returncode != 0
    assert "still takes the password it had before the last change" in failure_message(refused), \
        failure_message(refused)
    assert changed_tasks(refused.stdout) == []
    assert logs_in(stack, OLD_ENV)

    # The next run finishes the rotation under traffic.
    rotation, reads, app_logins, refused = rerun_under_traffic(stack, *vaulted)
    assert rotation.returncode == 0, rotation.stdout[-3000:]
    assert new_password not in rotation.stdout + rotation.stderr
    changed = changed_tasks(rotation.stdout)
    assert RESTART in changed and DISCARD in changed, changed
    observe(f"[{stack.name}] Oracle MySQL, password rotated by rerun under traffic: {reads['requests']} requests "
            f"in {reads['seconds']} s, {len(reads['failures'])} failed; the app logged in {app_logins} times, "
            f"MySQL refused {refused} logins")
    assert reads["requests"] > 100 and reads["failures"] == [], reads["failures"][:5]
    # More logins than the restarts' own: the traffic logged in anew all along.
    assert app_logins >= 10 and refused == 0, (app_logins, refused)
    assert stack.root_sql(SECOND_PASSWORDS).strip() == "0"
    assert not logs_in(stack, OLD_ENV)
    assert logs_in(stack, APP_ENV_FILE)

    # Back to the inventory's password, in one run, the same way.
    restored, back, app_logins, refused = rerun_under_traffic(stack)
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert RETAIN in changed_tasks(restored.stdout)
    observe(f"[{stack.name}] Oracle MySQL, rotated back: {back['requests']} requests in {back['seconds']} s, "
            f"{len(back['failures'])} failed; the app logged in {app_logins} times, MySQL refused {refused} logins")
    assert back["requests"] > 100 and back["failures"] == [], back["failures"][:5]
    assert app_logins >= 10 and refused == 0, (app_logins, refused)
    assert logs_in(stack, OLD_ENV)
    assert stack.root_sql(SECOND_PASSWORDS).strip() == "0"


def test_a_new_password_is_refused_for_an_account_that_must_change_plugin(stack, tmp_path):
    """An account on sha256_password (like one on mysql_native_password, an
    older install's, which MySQL 9.7 no longer has) moves to
    caching_sha2_password, which keeps no second password across the move:
    with a new password the run is refused before any change, the app still
    logging in; with the password it has, the account moves and the app
    still logs in."""
    def plugin():
        return stack.root_sql(f"SELECT plugin FROM mysql.user WHERE User = '{DB_USER}' AND Host = '127.0.0.1'")

    # The password from the app's root-only file, piped: never on a command line.
    stack.host.check_output(
        f"set -a; . {APP_ENV_FILE}; printf \"ALTER USER '%s'@'127.0.0.1' IDENTIFIED WITH sha256_password BY '%s'\" "
        "\"$FLASKAPP_DB_USER\" \"$FLASKAPP_DB_PASSWORD\" | mysql")
    assert plugin() == "sha256_password" and logs_in(stack, APP_ENV_FILE)
    refused = stack.rerun("--tags", "mysql",
                          *vault_args(tmp_path, vault_flaskstack_db_password="another" + secrets.token_hex(12)))
    assert refused.returncode != 0
    assert "authenticates with sha256_password, and its password is not the one given" in \
        failure_message(refused), failure_message(refused)
    assert changed_tasks(refused.stdout) == []
    assert plugin() == "sha256_password" and logs_in(stack, APP_ENV_FILE)
    moved = assert_succeeded(stack.rerun("--tags", "mysql"))
    assert changed_tasks(moved.stdout) == ["mysql : Create the application account"], failure_text(moved)
    assert plugin() == "caching_sha2_password" and logs_in(stack, APP_ENV_FILE)
    assert stack.http("/todos").status == 200
