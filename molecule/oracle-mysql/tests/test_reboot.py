"""The host reboots (ansible.builtin.reboot, over SSH as the sudo user) and the
stack comes back by itself: every unit active, HAProxy's server UP, /todos on
both ports, and the next converge changes nothing. Runs after the single-host
suite (molecule passes this file last)."""
import json
import os
import subprocess
import time

from flaskstack_testlib import APP_PORTS, SEEDED_TODOS, assert_succeeded, failure_text, machine_lock, recap, wait_for

# A container shares the host's kernel, so the kernel's boot_id never changes;
# the start time of the container's PID 1 (systemd) does. On a VM the module's
# default (boot_id) is the right check.
BOOT_TIME_COMMAND = "cut -d' ' -f22 /proc/1/stat"


def reboot(name):
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true"}
    with machine_lock(exclusive=False):
        return subprocess.run(
            ["ansible", "-i", os.environ["MOLECULE_INVENTORY_FILE"], name, "--become",
             "-m", "ansible.builtin.reboot",
             "-a", json.dumps({"boot_time_command": BOOT_TIME_COMMAND, "reboot_timeout": 300})],
            capture_output=True, text=True, check=False, env=env)


def logs_in(stack):
    """Whether a command runs on the host over SSH (testinfra raises when ssh cannot connect)."""
    try:
        return stack.host.run("true").rc == 0
    except RuntimeError:
        return False


def test_the_stack_comes_back_after_a_reboot_with_no_rerun(stack, observe):
    started_before = stack.host.check_output(BOOT_TIME_COMMAND)
    began = time.monotonic()
    result = reboot(stack.name)
    assert_succeeded(result)
    # The reboot module saw the host back, yet the port Docker publishes refused the
    # next login once (a loaded make test): allow the host a minute to take logins.
    assert wait_for(lambda: logs_in(stack), 60, interval=2) is not None, "no SSH login within 60 s of the reboot"
    assert stack.host.check_output(BOOT_TIME_COMMAND) != started_before, "PID 1 was not restarted"

    # Every unit of the stack active, with nothing rerun.
    settled = wait_for(lambda: stack.host.run("systemctl is-system-running --wait").stdout.strip()
                       in ("running", "degraded"), timeout=120, interval=2)
    assert settled is not None, "systemd did not finish booting in 120 s"
    assert stack.host.run("systemctl --failed --no-legend").stdout.strip() == ""
    for unit in stack.unit_pids():
        assert stack.host.service(unit).is_running, unit

    # HAProxy's health check finds MySQL, and both instances serve the seeded rows.
    assert wait_for(lambda: stack.server()["status"] == "UP", timeout=30) is not None, stack.server()
    for port in APP_PORTS:
        assert wait_for(lambda: stack.http_status("/todos", port) == 200, timeout=30) is not None, port
        assert stack.http("/todos", port).json() == SEEDED_TODOS
    observe(f"{stack.name}: reboot over SSH until /todos answered on both ports: "
            f"{time.monotonic() - began:.0f} s")

    rerun = assert_succeeded(stack.rerun())
    assert recap(rerun.stdout, stack.name)["changed"] == 0, failure_text(rerun)
