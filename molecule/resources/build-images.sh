#!/usr/bin/env bash
# Build the test images side by side (debootstrap waits on the network more
# than on the CPU), each line prefixed with its image; fail if any failed.
# Usage: build-images.sh TAG:SUITE[:VARIANT]...   (e.g. debian12:bookworm sid-ssh:sid:ssh)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pids=() tags=()
for entry in "$@"; do
  IFS=: read -r tag suite variant <<<"$entry"
  ( bash "$here/build-image.sh" "$suite" "flaskstack/systemd:$tag" ${variant:+"$variant"} 2>&1 |
      sed -u "s/^/[$tag] /"; exit "${PIPESTATUS[0]}" ) &
  pids+=($!) tags+=("$tag")
done

failed=()
for index in "${!pids[@]}"; do
  wait "${pids[$index]}" || failed+=("${tags[$index]}")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "images failed: ${failed[*]}" >&2
  exit 1
fi
