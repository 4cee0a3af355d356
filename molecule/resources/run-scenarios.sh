#!/usr/bin/env bash
# Run molecule scenarios side by side (each has its own containers and network),
# each line prefixed with its scenario's name; fail if any of them failed.
# Usage: run-scenarios.sh SCENARIO...
set -uo pipefail

pids=()
for scenario in "$@"; do
  ( molecule test -s "$scenario" 2>&1 | sed -u "s/^/[$scenario] /"; exit "${PIPESTATUS[0]}" ) &
  pids+=($!)
done

failed=()
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed+=("${@:$((index + 1)):1}")
done
# Containers started with cgroup2-init leave empty cgroups behind on a v1 host.
bash "$(dirname "$0")/cgroup2-cleanup.sh" || true

if [ ${#failed[@]} -gt 0 ]; then
  echo "scenarios failed: ${failed[*]}" >&2
  exit 1
fi
echo "scenarios passed: $*"
