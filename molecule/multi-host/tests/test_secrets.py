"""The stack's generated password belongs to the controller that deployed it: a
controller without it must not make a new one and lock the running app out."""
import re
import secrets
import time

from flaskstack_testlib import changed_tasks, extra_vars_args, failure_message, run_playbook

ACCOUNT_CHANGED = "TASK [mysql : Create the application account]"
APPLIED = "TASK [flaskapp : Note that the app runs with the current settings]"


def test_a_controller_without_the_password_refuses_to_replace_it(stacks, tmp_path):
    db = stacks["db1"]
    missing = tmp_path / "flaskstack_db_password"
    refused = db.rerun("--tags", "mysql", flaskstack_db_password_file=str(missing))
    assert refused.returncode != 0
    message = failure_message(refused, "db1")
    assert "holds the stack's database" in message and str(missing) in message, message
    assert "flaskstack_db_password_new=true" in message
    # Nothing made a password, and nothing ran past the check.
    assert not missing.exists()
    assert changed_tasks(refused.stdout) == []
    # Asked for a new one, the run sets it (shown in check mode, which changes nothing).
    asked = db.rerun("--tags", "mysql", "--check", flaskstack_db_password_file=str(missing),
                     flaskstack_db_password_new="true")
    assert asked.returncode == 0, asked.stdout[-3000:]
    assert "mysql : Create the application account" in changed_tasks(asked.stdout)


def started_at(output, header):
    """Seconds into the run at which a task (its header line) started, from the
    profile_tasks line that follows it."""
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(header))
    hours, minutes, seconds = re.search(r"(\d+):(\d\d):(\d\d\.\d+) \*+\s*$", lines[index + 1]).groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_a_new_password_on_mariadb_fails_new_logins_for_a_measured_window(stacks, address, observe):
    """MariaDB has no second password: from the moment db1 takes the new one
    until the app instances restart with it, the app's new logins fail (its
    pooled connections, already logged in, go on). The window is measured from
    the run's own task times, and its cost under traffic through lb1 (three
    streams against pools of one, so new logins keep happening)."""
    new_password = "rotated" + secrets.token_hex(12)
    for label, extra_vars in (("to a new password", {"vault_flaskstack_db_password": new_password}),
                              ("back", {})):
        with stacks["app1"].steady_reads(address=address["lb1"], ports=[80], streams=3) as reads:
            started = time.monotonic()
            run = run_playbook(*extra_vars_args(extra_vars))
            took = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:]
        window = started_at(run.stdout, APPLIED) - started_at(run.stdout, ACCOUNT_CHANGED)
        failures = reads["failures"]
        observe(f"[db1] MariaDB, password rotated {label} by a {took:.0f} s run: new logins refused for "
                f"{window:.0f} s (account changed to app restarted); {len(failures)} of {reads['requests']} "
                f"requests failed")
        # Every failure is the database refusing a login (503), never anything else, and the
        # window closes within the run: the app answers once it runs with the new password.
        assert {failure["status"] for failure in failures} <= {503}, failures[:5]
        assert 0 < window < took
        assert stacks["app1"].http("/todos", address=address["lb1"], port=80).status == 200
