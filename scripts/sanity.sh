#!/usr/bin/env bash
# ansible-test sanity on the collection flaskstack.stack (make lint).
#
# What is tested is the collection's content: the artifact `ansible-galaxy
# collection build` makes (galaxy.yml's build_ignore leaves out the project's
# tests, benchmarks, lab and tooling), plus tests/ (unit tests, and the sanity
# ignore file) and the changelog fragments. ansible-test needs it at a path ending in
# ansible_collections/flaskstack/stack/, so both go to a temporary tree of that
# shape, beside links to the collections galaxy.yml depends on (as the ansible
# package bundles them).
#
# Each test runs in a virtual environment of its own, with the requirements
# ansible-test pins, installed from PyPI. Those environments, pip's cache and
# ansible-test's own cache live in $FLASKSTACK_CACHE/ansible-test-home (HOME for
# the run; by default ~/.cache/flaskstack), outside the checkout: every clone on
# this machine reuses them, as it reuses the test images, instead of spending
# minutes building them again. ansible-test bootstraps pip into them with a script
# from ci-files.testing.ansible.com; where that host is unreachable, a stand-in
# installs Python's bundled pip (ensurepip) and then the pip version asked for,
# from PyPI.
#
# No test is skipped: every one whose requirements install from PyPI runs
# (pslint and shellcheck find nothing of theirs to check).
# Usage: scripts/sanity.sh [ansible-test sanity options, e.g. --test pep8]
set -euo pipefail

project=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$project/.venv/bin}
python=$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

home=${FLASKSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flaskstack}/ansible-test-home
cache=$home/.ansible/test/cache
mkdir -p "$cache"
# The pip version ansible-test bootstraps into its environments.
pip_version=$("$bin/python" -c 'import inspect, re
import ansible_test._internal.python_requirements as requirements
print(re.search(r"pip=.([0-9.]+).", inspect.getsource(requirements.get_venv_packages)).group(1))')
bootstrap=$cache/get_pip_${pip_version//./_}.py
if [ ! -s "$bootstrap" ]; then
    if ! "$bin/python" - "$pip_version" "$bootstrap" <<'PY'
import sys, urllib.request
version, target = sys.argv[1:]
with urllib.request.urlopen(f"https://ci-files.testing.ansible.com/ansible-test/get-pip-{version}.py", timeout=15) as answer:
    data = answer.read()
with open(target, "wb") as out:
    out.write(data)
PY
    then
        echo "sanity.sh: ci-files.testing.ansible.com unreachable: pip $pip_version is bootstrapped from ensurepip and PyPI" >&2
        cat >"$bootstrap" <<'PY'
"""Stand-in for ansible-test's get-pip bootstrap (written by scripts/sanity.sh
where ci-files.testing.ansible.com is unreachable): Python's bundled pip, then
`pip install --upgrade --force-reinstall` of what ansible-test asks for (the
pinned pip and its companions), from PyPI."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
# get-pip's own options (--no-setuptools, --no-wheel) are not pip's: pip installs neither unless asked.
options = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall", *options])
PY
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/ansible_collections/flaskstack/stack
mkdir -p "$tree"
cd "$project"
"$bin/ansible-galaxy" collection build --force --output-path "$work" . >/dev/null
tar -xzf "$work"/flaskstack-stack-*.tar.gz -C "$tree"
git ls-files -z --cached --others --exclude-standard -- tests changelogs/fragments \
    | "$bin/python" -c 'import os, sys
sys.stdout.write("\0".join(name for name in sys.stdin.read().split("\0") if name and os.path.lexists(name)))' \
    | tar --null -T - -cf - | tar -xf - -C "$tree"

# The collections galaxy.yml depends on, where this Python finds them.
"$bin/python" - "$work/ansible_collections" <<'PY'
import importlib, os, sys, yaml
root = sys.argv[1]
for name in yaml.safe_load(open("galaxy.yml"))["dependencies"]:
    namespace, collection = name.split(".")
    module = importlib.import_module(f"ansible_collections.{namespace}.{collection}")
    os.makedirs(os.path.join(root, namespace), exist_ok=True)
    os.symlink(list(module.__path__)[0], os.path.join(root, namespace, collection))
PY

cd "$tree"
HOME=$home PATH=$bin:$PATH "$bin/ansible-test" sanity --python "$python" --color no "$@"
