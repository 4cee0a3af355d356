#!/usr/bin/env bash
# Build the collection flaskstack.stack from this checkout (as `make collection`
# does, into .cache/collection/) and install the artifact into DEST, an empty
# collections path outside the checkout. Prints DEST, for ANSIBLE_COLLECTIONS_PATH:
# set in the environment, it overrides ansible.cfg's collections_path, so
# flaskstack.stack.* resolve to the installed copy, not to this checkout.
#
# Its dependencies (community.mysql, community.crypto) are not installed
# (--no-deps): the pinned ansible package bundles them, and Ansible finds them on
# Python's path wherever ANSIBLE_COLLECTIONS_PATH points.
# --fresh empties DEST first (a scenario's own directory, reused run after run).
# Usage: install-collection.sh [--fresh] DEST     e.g. install-collection.sh "$(mktemp -d)"
set -euo pipefail

fresh=false
if [ "${1:-}" = --fresh ]; then fresh=true; shift; fi
dest=${1:?usage: install-collection.sh [--fresh] DEST}
project=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$project/.venv/bin}

mkdir -p "$dest"
dest=$(cd "$dest" && pwd -P)
case "$dest/" in
    "$(cd "$project" && pwd -P)"/*) echo "install-collection.sh: $dest is inside the checkout" >&2; exit 1 ;;
esac
if $fresh; then
    find "$dest" -mindepth 1 -delete
fi
if [ -n "$(ls -A "$dest")" ]; then
    echo "install-collection.sh: $dest is not empty" >&2
    exit 1
fi

version=$("$bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$project/galaxy.yml")
artifact=$project/.cache/collection/flaskstack-stack-$version.tar.gz
(cd "$project" && "$bin/ansible-galaxy" collection build --force --output-path .cache/collection .) >&2
# From DEST, so no ansible.cfg of this checkout applies.
(cd "$dest" && "$bin/ansible-galaxy" collection install --no-deps -p "$dest" "$artifact") >&2
echo "$dest"
