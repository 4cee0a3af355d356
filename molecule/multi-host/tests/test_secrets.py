"""The stack's generated password belongs to the controller that deployed it: a
controller without it must not make a new one and lock the running app out."""
import secrets
import time

from flaskstack_testlib import changed_tasks, extra_vars_args, failure_message, run_playbook, task_start_times

ACCOUNT_CHANGED = "TASK [mysql : Create the application account]"
APPLIED = "TASK [flaskapp : Note that the app runs with the current settings]"
RESTARTING = "RUNNING HANDLER [flaskapp : Restart the app]"
# A request that failed just before the app's restart is answered a moment later.
ANSWER_SLACK = 1.0


def test_a_controller_without_the_password_refuses_to_replace_it(stacks, tmp_path):
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
    # Asked for a new one, the run sets it (shown in check mode, which changes nothing).
    asked = db.rerun("--tags", "mysql", "--check", flaskstack_db_password_file=str(missing),
                     flaskstack_db_password_new="true")
    assert asked.returncode == 0, asked.stdout[-3000:]
    assert "mysql : Create the application account" in changed_tasks(asked.stdout)


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
        assert "The database's certificate on db1 is signed by the stack's CA" in message, (selected, message)
        assert f"Copy {ca_cert.name} and {ca_key.name}" in message and str(tmp_path) in message, (selected, message)
        assert not ca_cert.exists() and not ca_key.exists(), selected
        assert changed_tasks(refused.stdout) == [], selected


def test_a_new_password_on_mariadb_fails_new_logins_for_a_measured_window(stacks, address, observe):
    """MariaDB has no second password: from the moment db1 takes the new one
    until the app instances restart with it, the app's new logins fail (its
    pooled connections, already logged in, go on). The window is measured from
    the run's own task times; under traffic through lb1 that keeps making new
    logins (six streams of 0.2 s queries over four instances with pools of one:
    each instance often runs two at once, and the second opens a connection of
    its own), requests fail inside it, and only inside it."""
    new_password = "rotated" + secrets.token_hex(12)
    for label, extra_vars in (("to a new password", {"vault_flaskstack_db_password": new_password}),
                              ("back", {})):
        with stacks["app1"].steady_reads(address=address["lb1"], ports=[80], streams=6, path="/sleep/0.2") as reads:
            started = time.monotonic()
            run = run_playbook(*extra_vars_args(extra_vars))
            took = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:]
        starts = task_start_times(run.stdout)
        opened, closed = starts[ACCOUNT_CHANGED], starts[APPLIED]
        restarting = starts[RESTARTING]
        failures = reads["failures"]
        inside = [f for f in failures if opened <= f["wall"] <= closed + ANSWER_SLACK]
        refused = [f for f in failures if f["status"] == 503]
        cut = [f for f in failures if f["status"] != 503]
        observe(f"[db1] MariaDB, password rotated {label} by a {took:.0f} s run: new logins refused for "
                f"{closed - opened:.1f} s (account changed to app restarted); {len(failures)} of "
                f"{reads['requests']} requests failed, {len(inside)} of them inside that window: "
                f"{len(refused)} refused logins (503), {len(cut)} cut while the instances restarted {cut[:3]}")
        # The database refusing a login (503), inside the window and never
        # outside it; the app answers once it runs the new password. A 0.2 s
        # request in flight while its instance restarts may be cut (the entry
        # point retries only what no instance answered): that, only then.
        assert 0 < closed - opened < took
        assert all(restarting - ANSWER_SLACK <= f["wall"] <= closed + ANSWER_SLACK for f in cut), \
            [dict(f, since_restart=round(f["wall"] - restarting, 2)) for f in cut][:5]
        assert inside, f"no request failed between {opened:.2f} and {closed:.2f}: the window is not the one measured"
        assert inside == failures, [dict(f, since_opened=round(f["wall"] - opened, 2))
                                    for f in failures if f not in inside][:5]
        assert stacks["app1"].http("/todos", address=address["lb1"], port=80).status == 200
