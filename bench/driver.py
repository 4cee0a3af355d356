"""Driving the benchmark's container: commands on the controller and inside the
container, a fresh container, and playbook runs with their timings."""
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

from settings import CONTAINER, DOCKER_FLAGS, IMAGE, ROOT, TARGET


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command, env=None, check=True, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, **kwargs)
    if check and result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {shlex.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def sh(script, check=True, stdin=None):
    """A shell command inside the container; stdin, if given, is its input
    (the way secrets reach it: never on a command line)."""
    return run(["docker", "exec", *(["-i"] if stdin is not None else []), CONTAINER, "sh", "-c", script],
               check=check, input=stdin).stdout


def new_container():
    run(["docker", "rm", "-f", CONTAINER], check=False)
    run(["docker", "run", "-d", "--name", CONTAINER, "--hostname", "bench1", *DOCKER_FLAGS, IMAGE])
    for _ in range(50):
        state = run(["docker", "exec", CONTAINER, "systemctl", "is-system-running"], check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)


def playbook(*args, env=None, playbook_path=ROOT / "playbooks" / "site.yml"):
    """Run a playbook on the container with the settings ansible.cfg ships:
    (wall seconds, recap counters, output)."""
    started = time.monotonic()
    result = run(["ansible-playbook", str(playbook_path), *TARGET, *args],
                 env={"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true",
                      "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles", **(env or {})},
                 cwd=ROOT)
    seconds = time.monotonic() - started
    return seconds, recap(result.stdout), result.stdout


def recap(output):
    """The PLAY RECAP counters of the one host: {'ok': 80, 'changed': 0, ...}, or {} if there is none."""
    match = re.search(r"^\S+\s+:\s+(ok=.*)$", output, re.MULTILINE)
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))} if match else {}


def extra_vars(values):
    return ["-e", json.dumps(values)] if values else []


def min_median(values):
    return {"min": min(values), "median": statistics.median(values), "runs": values}
