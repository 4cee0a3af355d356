#!/usr/bin/env bash
# A fresh SSH key pair for a test run: DIR/id_ed25519 (the controller's) and
# DIR/id_ed25519.pub, which the test container mounts as the sudo user's
# authorized key. The public key is rewritten in place, so a container that
# already mounts it sees the new key.
# Usage: ssh-key.sh DIR
set -euo pipefail

dir=${1:?directory for the key pair}
mkdir -p "$dir"
chmod 0700 "$dir"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ssh-keygen -q -t ed25519 -N '' -C "flaskstack-test-$(date +%Y%m%d%H%M%S)" -f "$scratch/key"
install -m 0600 "$scratch/key" "$dir/id_ed25519"
touch "$dir/id_ed25519.pub"
chmod 0644 "$dir/id_ed25519.pub"
cat "$scratch/key.pub" >"$dir/id_ed25519.pub"
echo "ssh key: new pair in $dir"
