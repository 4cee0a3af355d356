#!/usr/bin/env bash
# Run molecule scenarios side by side (each has its own containers and network),
# each line prefixed with its scenario's name; fail if any of them failed, and
# then repeat the failed tests' error and summary lines last, where a CI log's tail shows them.
# Ends with the cost table: each scenario's wall time and the costliest playbook
# runs (every run is recorded by callback_plugins/flaskstack_run_cost.py).
# Named longest first: each later one runs its controller side (Ansible, pytest)
# under a higher `nice` (0, 5, 10...), so the critical path gets the CPU when all
# want it. (Not its containers: at half the CPU weight, the others' killed app
# took 7 to 10 s and more to answer again, against 2 to 4.5 s.)
# Usage: run-scenarios.sh SCENARIO...
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export FLASKSTACK_RUN_LOG="$logs/playbook-runs.jsonl"
# One module payload cache for every run (callback_plugins/flaskstack_lean_runs.py).
export FLASKSTACK_ANSIBALLZ_CACHE="$logs/ansiballz"
export ANSIBLE_CALLBACK_PLUGINS="$here/callback_plugins${ANSIBLE_CALLBACK_PLUGINS:+:$ANSIBLE_CALLBACK_PLUGINS}"
# The machine's CPU time (busy, idle with I/O wait, stolen by the hypervisor), in
# ticks: whether the scenarios were short of CPU or waited on each other.
cpu_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6, $9}' /proc/stat; }
read -r busy_before idle_before stolen_before < <(cpu_ticks)
pids=()
priority=0
for scenario in "$@"; do
  ( started=$SECONDS
    nice -n "$priority" molecule test -s "$scenario" 2>&1 | sed -u "s/^/[$scenario] /" | tee "$logs/$scenario"
    status=${PIPESTATUS[0]}
    echo "$scenario $((SECONDS - started)) $status" >>"$logs/scenarios.tsv"
    exit "$status" ) &
  pids+=($!)
  priority=$((priority + 5))
done

failed=()
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed+=("${@:$((index + 1)):1}")
done
# Containers started with cgroup2-init leave empty cgroups behind on a v1 host.
bash "$here/cgroup2-cleanup.sh" || true

echo; echo "=== What the scenarios cost"
read -r busy_after idle_after stolen_after < <(cpu_ticks)
busy=$((busy_after - busy_before)) idle=$((idle_after - idle_before)) stolen=$((stolen_after - stolen_before))
echo "the machine's CPUs meanwhile: $((100 * busy / (busy + idle + stolen + 1)))% busy," \
  "$((100 * stolen / (busy + idle + stolen + 1)))% stolen by the hypervisor, the rest idle"
python3 "$here/run_costs.py" "$FLASKSTACK_RUN_LOG" "$logs/scenarios.tsv" 10 || true
echo
# Kept for a closer look (every run, not only the costliest).
mkdir -p "$here/../../.cache" && cp "$FLASKSTACK_RUN_LOG" "$logs/scenarios.tsv" "$here/../../.cache/" 2>/dev/null || true

if [ ${#failed[@]} -gt 0 ]; then
  for scenario in "${failed[@]}"; do
    # pytest's error lines (a failed assertion with its message), then its short
    # summary: one line per failed test.
    grep -E "^\[$scenario\] E  " "$logs/$scenario" | cut -c1-1500 | tail -n 40 >&2
    grep -E "^\[$scenario\] (FAILED|ERROR) \S+::" "$logs/$scenario" | cut -c1-400 | tail -n 30 >&2
  done
  echo "scenarios failed: ${failed[*]}" >&2
  exit 1
fi
echo "scenarios passed: $*"
