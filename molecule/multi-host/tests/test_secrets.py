"""The stack's generated password belongs to the controller that deployed it: a
controller without it must not make a new one and lock the running app out. A
new password given on purpose reaches every member of the group with no
refused login."""
from flaskstack_testlib import changed_tasks, failure_message

RETAIN = "mysql : Keep the current password as a second one while the app moves to the new one"
DISCARD = "mysql : Discard the old password"


def test_a_controller_without_the_password_refuses_to_replace_it(stacks, tmp_path, primary):
    """A new controller (no generated password) is refused whatever the run
    selects: the database host, or an app host alone, which --limit cuts off
    from the database; and the refused run leaves no password behind for the
    next run to find."""
    db, app = stacks["db1"], stacks["app1"]
    missing = tmp_path / "flaskstack_db_password"
    for selected, run in (("--tags mysql", lambda: db.rerun("--tags", "mysql", flaskstack_db_password_file=str(missing))),
                          ("--limit app1", lambda: app.rerun(flaskstack_db_password_file=str(missing)))):
        refused = run()
        assert refused.returncode != 0, selected
        message = failure_message(refused)
        assert "The stack is deployed (db1:/var/lib/mysql/" in message and "app1:" in message, (selected, message)
        assert str(missing) in message and "flaskstack_db_password_new=true" in message, (selected, message)
        # Nothing made a password, and nothing ran past the check.
        assert not missing.exists(), selected
        assert changed_tasks(refused.stdout) == [], selected
    # Asked for a new one, the run makes it and goes on (in check mode, which changes nothing on the hosts).
    asked = primary.rerun("--tags", "mysql", "--check", flaskstack_db_password_file=str(missing),
                          flaskstack_db_password_new="true")
    assert asked.returncode == 0, asked.stdout[-3000:]
    assert missing.exists()


def test_a_controller_without_the_ca_refuses_to_replace_it(stacks, tmp_path):
    """The password copied but not the CA: a new CA would re-sign db1's
    certificate before the app hosts trust it. Refused, whether the run reaches
    the database host or only an app host, naming the files to copy."""
    db, app = stacks["db1"], stacks["app1"]
    ca_cert, ca_key = tmp_path / "flaskstack-db-ca.pem", tmp_path / "flaskstack-db-ca.key"
    elsewhere = {"flaskstack_db_tls_ca_cert": str(ca_cert), "flaskstack_db_tls_ca_key": str(ca_key)}
    for selected, stack, args in (("--tags mysql", db, ("--tags", "mysql")), ("--limit app1", app, ())):
        refused = stack.rerun(*args, **elsewhere)
        assert refused.returncode != 0, selected
        message = failure_message(refused)
        assert "The database's certificate on db1, db2, db3 is signed by the stack's CA" in message, (selected, message)
        assert f"Copy {ca_cert.name} and {ca_key.name}" in message and str(tmp_path) in message, (selected, message)
        assert not ca_cert.exists() and not ca_key.exists(), selected
        assert changed_tasks(refused.stdout) == [], selected


def test_a_controller_without_the_recovery_password_refuses_to_replace_it(stacks, tmp_path):
    """The app's password and the CA copied but not the group's recovery
    password: a new one would break every member's rejoin. Refused, even for a
    run limited to the proxy host, and nothing generated."""
    missing = tmp_path / "flaskstack_recovery_password"
    refused = stacks["lb1"].rerun("--tags", "haproxy", flaskstack_recovery_password_file=str(missing))
    assert refused.returncode != 0
    message = failure_message(refused)
    assert "db1, db2, db3 joined a replicated group with a recovery password this controller does not have" \
        in message and str(missing) in message, message
    assert not missing.exists()
    assert changed_tasks(refused.stdout) == []


def test_a_new_password_reaches_every_member_with_no_refused_login(group_rotated_and_back, observe):
    """A new password by rerun on the group: the primary keeps the old one as
    the account's second until every app host runs the new one, the members
    get both changes from it, and under traffic that keeps making new logins
    MySQL refuses none and no request fails; then back, the same way
    (conftest.py's group_rotated_and_back)."""
    for run in group_rotated_and_back:
        reads = run["reads"]
        observe(f"[multi-host] group, password rotated {run['label']} by a {run['seconds']:.0f} s run: "
                f"{reads['requests']} requests, {len(reads['failures'])} failed; MySQL refused {run['refused']} "
                f"logins on {run['primary']}")
        assert run["returncode"] == 0, run["tail"]
        assert len(set(run["hashes"].values())) == 1, run["hashes"]
        assert set(run["second_passwords"].values()) == {"0"}, run["second_passwords"]
        assert run["refused"] == 0 and reads["failures"] == [], (run["refused"], reads["failures"][:5])
        assert RETAIN in run["changed"] and DISCARD in run["changed"], run["changed"]
