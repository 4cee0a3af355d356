"""Provisioning: how long playbooks/site.yml takes, cold, warm and for a HAProxy
reconfigure, against the floor of as many no-op tasks, and what each Ansible
speed knob buys."""
import json
import pathlib
import re
import statistics
import sys
import tempfile
import time

from driver import log, min_median, new_container, playbook, recap, run
from settings import KNOB_RUNS, KNOBS_OFF, MITOGEN, ROOT, RUNS, TARGET, WITH_REMOTE_USER


def role_times(output):
    """profile_roles' summary: {role: seconds}."""
    summary = output.split("=" * 20)[-1]
    return {name: float(seconds) for name, seconds in
            re.findall(r"^\s*(\S+) -+ (\d+\.\d+)s\s*$", summary, re.MULTILINE) if name != "total"}


def measure_provisioning():
    results = {"cold": [], "warm": [], "reconfigure": [], "baseline": [], "baseline_round_trips": []}
    cold_roles = []
    for attempt in range(RUNS):
        new_container()
        log(f"cold converge {attempt + 1}/{RUNS}")
        seconds, counters, output = playbook()
        results["cold"].append(seconds)
        cold_roles.append(role_times(output))
    warm_counters, warm_roles = None, []
    for attempt in range(RUNS):
        seconds, warm_counters, output = playbook()
        log(f"warm rerun {attempt + 1}/{RUNS}: {seconds:.1f}s, changed={warm_counters['changed']}")
        results["warm"].append(seconds)
        warm_roles.append(role_times(output))
    for attempt, maxconn in enumerate([11, 10, 11][:RUNS] + [10] * max(0, RUNS - 3)):
        seconds, counters, _ = playbook("--tags", "haproxy", "-e", f"haproxy_server_maxconn={maxconn}")
        log(f"haproxy reconfigure {attempt + 1}/{RUNS} (maxconn {maxconn}): {seconds:.1f}s")
        results["reconfigure"].append(seconds)
    playbook("--tags", "haproxy")  # back to the defaults

    # The floor: gather facts, then as many tasks as the warm rerun ran. Two
    # kinds of no-op: `debug`, which Ansible runs on the controller (its fixed
    # cost per task), and `ping`, a round trip to the container that does nothing.
    tasks = warm_counters["ok"] + warm_counters["skipped"]
    with tempfile.TemporaryDirectory() as tmp:
        for key, module in (("baseline", "ansible.builtin.debug"), ("baseline_round_trips", "ansible.builtin.ping")):
            baseline = pathlib.Path(tmp, f"{key}.yml")
            baseline.write_text(json.dumps([{
                "name": "Baseline", "hosts": "all", "gather_facts": True,
                "tasks": [{"name": f"No-op {n}", module: {}} for n in range(tasks - 1)]}]))
            for _ in range(RUNS):
                seconds, _, _ = playbook(playbook_path=baseline)
                results[key].append(seconds)
            log(f"{key} ({tasks} tasks, {module}): {min(results[key]):.1f}s")
    return {"figures": {key: min_median(values) for key, values in results.items()},
            "warm_changed": warm_counters["changed"], "tasks": tasks,
            "cold_roles": {role: statistics.median(r.get(role, 0) for r in cold_roles) for role in cold_roles[0]},
            "warm_roles": {role: statistics.median(r.get(role, 0) for r in warm_roles) for role in warm_roles[0]}}


def mitogen_env():
    """Mitogen, installed beside the venv for the benchmark only: its strategy
    plugin, or None if it cannot be installed."""
    target = ROOT / ".venv" / "bench-mitogen"
    if not target.exists():
        result = run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), MITOGEN], check=False)
        if result.returncode != 0:
            return None
    plugins = target / "ansible_mitogen" / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear",
            "PYTHONPATH": str(target)}


def measure_knobs():
    """Warm reruns under each speed knob, against all of them off."""
    cache = tempfile.mkdtemp(prefix="flaskstack-facts-")
    kept = {"ANSIBLE_PIPELINING": "true", "ANSIBLE_GATHERING": "smart"}
    variants = {
        "all knobs off": {},
        "pipelining": {"ANSIBLE_PIPELINING": "true"},
        "gathering = smart": {"ANSIBLE_GATHERING": "smart"},
        "gathering = smart + jsonfile fact cache": {
            "ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache, "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "600"},
        "strategy = free": {"ANSIBLE_STRATEGY": "free"},
        "no remote user (docker connection)": {},
        "pipelining + gathering = smart": kept,
        "pipelining + gathering = smart + no remote user (as shipped)": kept,
    }
    # "all knobs off" passes a remote user, as an inventory written for SSH does.
    arguments = {name: [] if "no remote user" in name else WITH_REMOTE_USER for name in variants}
    mitogen = mitogen_env()
    if mitogen:
        name = "Mitogen (mitogen_linear) + pipelining + smart"
        variants[name] = {**mitogen, **kept}
        # Mitogen swaps in its own transport only for the short name "docker".
        arguments[name] = ["-e", "ansible_connection=docker"]
    results = {}
    for name, env in variants.items():
        times, note = [], ""
        for _ in range(KNOB_RUNS):
            started = time.monotonic()
            result = run(["ansible-playbook", str(ROOT / "playbooks" / "site.yml"), *TARGET,
                          *arguments.get(name, [])],
                         env={"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true", **KNOBS_OFF, **env},
                         cwd=ROOT, check=False)
            if result.returncode != 0:
                lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
                note = f"failed: {lines[-1][:200] if lines else result.returncode}"
                break
            times.append(time.monotonic() - started)
            if recap(result.stdout).get("changed") != 0:
                note = "warm rerun reported changes"
        results[name] = {"times": times, "note": note}
        log(f"knob {name}: {min(times):.1f}s" if times else f"knob {name}: {note}")
    if not mitogen:
        results["Mitogen"] = {"times": [], "note": f"pip could not install {MITOGEN}"}
    return results
