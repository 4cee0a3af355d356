"""MariaDB has no second password: from the moment MySQL takes the new one until
the app instances restart with it, the app's new logins fail (its pooled
connections, already logged in, go on). The window is measured from the run's
own task times; under traffic that keeps making new logins (six streams of
0.2 s queries over the two instances with pools of one: each instance often
runs two at once, and the second opens a connection of its own), requests
fail inside it, and only inside it. Oracle MySQL keeps the old password as a
second one instead (test_password_rotation.py: no request fails).

The new password comes from an ansible-vault file, as users keep it, and the
run shows -v --diff: no output holds it (on Oracle MySQL, the rotation test
proves the same); the run back drops the vault: the generated password again."""
import secrets
import time

import pytest
from flaskstack_testlib import APP_PORTS, DB_NAME, SEEDED_TODOS, deployed_password, task_start_times, vault_args

pytestmark = [pytest.mark.platform_independent, pytest.mark.mariadb_only]

ACCOUNT_CHANGED = "TASK [mysql : Create the application account]"
APPLIED = "TASK [flaskapp : Note that the app runs with the current settings]"
RESTARTING = "RUNNING HANDLER [flaskapp : Restart the app]"
# A request that failed just before the app's restart is answered a moment later.
ANSWER_SLACK = 1.0


def test_a_new_password_on_mariadb_fails_new_logins_for_a_measured_window(stack, observe, tmp_path):
    assert stack.flavor == "mariadb", "a MariaDB-only test ran on another flavour (the scenario's -m)"
    new_password = "rotated" + secrets.token_hex(12)
    vaulted = ["-v", "--diff", *vault_args(tmp_path, vault_flaskstack_db_password=new_password)]
    for label, args in (("to a new password from a vault", vaulted), ("back", [])):
        with stack.steady_reads(streams=6, path="/sleep/0.2") as reads:
            started = time.monotonic()
            run = stack.rerun(*args)
            took = time.monotonic() - started
        assert run.returncode == 0, run.stdout[-3000:]
        assert new_password not in run.stdout + run.stderr
        assert (deployed_password(stack) == new_password) == bool(args)
        starts = task_start_times(run.stdout)
        opened, closed = starts[ACCOUNT_CHANGED], starts[APPLIED]
        restarting = starts[RESTARTING]
        failures = reads["failures"]
        inside = [f for f in failures if opened <= f["wall"] <= closed + ANSWER_SLACK]
        refused = [f for f in failures if f["status"] == 503]
        cut = [f for f in failures if f["status"] != 503]
        observe(f"[{stack.name}] MariaDB, password rotated {label} by a {took:.0f} s run: new logins refused for "
                f"{closed - opened:.1f} s (account changed to app restarted); {len(failures)} of "
                f"{reads['requests']} requests failed, {len(inside)} of them inside that window: "
                f"{len(refused)} refused logins (503), {len(cut)} cut while the instances restarted {cut[:3]}")
        # The database refusing a login (503), inside the window and never
        # outside it; the app answers once it runs the new password. A 0.2 s
        # request in flight while its instance restarts may be cut: that, only then.
        assert 0 < closed - opened < took
        assert all(restarting - ANSWER_SLACK <= f["wall"] <= closed + ANSWER_SLACK for f in cut), \
            [dict(f, since_restart=round(f["wall"] - restarting, 2)) for f in cut][:5]
        assert inside, f"no request failed between {opened:.2f} and {closed:.2f}: the window is not the one measured"
        assert inside == failures, [dict(f, since_opened=round(f["wall"] - opened, 2))
                                    for f in failures if f not in inside][:5]
        for port in APP_PORTS:
            assert stack.http_status("/todos", port) == 200, port
        assert stack.app_sql(f"SELECT COUNT(*) FROM {DB_NAME}.todos").strip() == str(len(SEEDED_TODOS))
