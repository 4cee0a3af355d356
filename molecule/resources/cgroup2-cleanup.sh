#!/usr/bin/env bash
# Remove the cgroup2 subtrees that cgroup2-init made for containers that are
# gone (on a cgroup v1 host they outlive the container). Subtrees of running
# containers are kept. Nothing to do on a cgroup v2 host.
set -euo pipefail

[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && exit 0
scratch=$(mktemp -d)
trap 'umount "$scratch" 2>/dev/null || true; rmdir "$scratch"' EXIT
mount -t cgroup2 none "$scratch" 2>/dev/null || exit 0
[ -d "$scratch/flaskstack" ] || exit 0
running=$(docker ps --format '{{.Names}}' 2>/dev/null || true)
for subtree in "$scratch"/flaskstack/*/; do
  [ -d "$subtree" ] || continue
  name=$(basename "$subtree")
  grep -qxF "$name" <<<"$running" && continue
  # Deepest first: a cgroup can only be removed once its children are.
  find "$subtree" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done
