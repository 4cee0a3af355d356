"""The cost table printed at the end of `make test`: each scenario's wall time,
its playbook runs and measured windows, then the costliest playbook runs
(callback_plugins/flaskstack_run_cost.py wrote one JSON line per run,
flaskstack_testlib one per measured window, "kind": "window", and one per
test, "kind": "test"), then the costliest tests by the CPU they took.
Usage: run_costs.py RUNS.jsonl SCENARIOS.tsv [COUNT]
(SCENARIOS.tsv: a scenario, its seconds and its exit status per line)."""
import collections
import json
import sys


def read_runs(path):
    try:
        with open(path, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


def minutes(seconds):
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def table(runs, scenarios, count=10):
    """The report's lines: per scenario its wall time, its playbook runs with
    their time and controller CPU, the lock waits of its runs and measured
    windows, and the windows with the time they held the lock; then the
    `count` costliest runs, with the lock wait apart."""
    lines = ["scenario       wall     playbook runs  their time  their CPU  lock waits  measured windows (held)"]
    windows = [run for run in runs if run.get("kind") == "window"]
    tests = [run for run in runs if run.get("kind") == "test"]
    runs = [run for run in runs if run.get("kind") is None]
    by_scenario, windows_of = collections.defaultdict(list), collections.defaultdict(list)
    for run in runs:
        by_scenario[run["scenario"]].append(run)
    for window in windows:
        windows_of[window["scenario"]].append(window)
    for name, seconds, status in scenarios:
        own, held = by_scenario.get(name, []), windows_of.get(name, [])
        waited = sum(r["lock_wait"] for r in own + held)
        took, cpu = sum(r["seconds"] for r in own), sum(r.get("cpu", 0) for r in own)
        lines.append(f"{name:<14} {minutes(seconds):>8} {len(own):>10}  {minutes(took):>10} {minutes(cpu):>10}"
                     f"  {minutes(waited):>10}  {len(held):>8} ({minutes(sum(w['seconds'] for w in held))})"
                     f"{'' if status == 0 else '  FAILED'}")
    lines.append("")
    lines.append(f"the {count} costliest playbook runs (seconds; lock: seconds waited before it started)")
    for run in sorted(runs, key=lambda r: r["seconds"], reverse=True)[:count]:
        what = run["test"].split("::")[-1] if run["test"] != "molecule" else "molecule's own run"
        options = " ".join(part for part in (f"--tags {run['tags']}" if run["tags"] else "",
                                             "--check" if run["check"] else "") if part)
        lines.append(f"{run['seconds']:7.1f}  lock {run['lock_wait']:5.1f}  {run['scenario']:<13} "
                     f"{run['hosts']:<12} {options:<24} {what}")
    if tests:
        lines.append("")
        lines.append(f"the {count} costliest tests (CPU seconds: the controller's, their containers' (- where one "
                     "restarted), then wall seconds; module fixtures count in their first test)")
        for test in sorted(tests, key=lambda t: t["cpu"] + (t["container_cpu"] or 0), reverse=True)[:count]:
            containers = "   -   " if test["container_cpu"] is None else f"{test['container_cpu']:7.1f}"
            lines.append(f"{test['cpu']:7.1f} {containers} {test['seconds']:7.1f}  "
                         f"{test['scenario']:<13} {test['test'].split('::')[-1]}")
    return lines


def main(argv):
    runs = read_runs(argv[1])
    with open(argv[2], encoding="utf-8") as rows:
        scenarios = [(name, float(seconds), int(status))
                     for name, seconds, status in (row.split() for row in rows if row.strip())]
    print("\n".join(table(runs, scenarios, int(argv[3]) if len(argv) > 3 else 10)))


if __name__ == "__main__":
    main(sys.argv)
