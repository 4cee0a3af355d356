#!/usr/bin/env bash
# Run molecule scenarios side by side (each has its own containers and network),
# each line prefixed with its scenario's name; fail if any of them failed, and
# then repeat the failed tests' error and summary lines last, where a CI log's tail shows them.
# Usage: run-scenarios.sh SCENARIO...
set -uo pipefail

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for scenario in "$@"; do
  ( molecule test -s "$scenario" 2>&1 | sed -u "s/^/[$scenario] /" | tee "$logs/$scenario"; exit "${PIPESTATUS[0]}" ) &
  pids+=($!)
done

failed=()
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed+=("${@:$((index + 1)):1}")
done
# Containers started with cgroup2-init leave empty cgroups behind on a v1 host.
bash "$(dirname "$0")/cgroup2-cleanup.sh" || true

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
