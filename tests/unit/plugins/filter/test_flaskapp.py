"""The app's pinned requirements install on every target's Python, proven
without those interpreters: pip resolves, for each version, the pins the role
installs there (the role's own filter evaluates the markers, since pip
evaluates them for the Python running it, not --python-version), from PyPI,
binary wheels only, as the target's pip would (targets have no compiler)."""
import json
import pathlib
import subprocess
import sys

import pytest
from ansible_collections.flaskstack.stack.plugins.filter.flaskapp import pins_for_python

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "flaskapp"
REQUIREMENTS = (ROLE / "files" / "requirements.txt").read_text()
# The Python of each supported platform.
TARGET_PYTHONS = {"ubuntu-20.04": "3.8.10", "ubuntu-22.04": "3.10.12", "ubuntu-24.04": "3.12.3",
                  "debian-11": "3.9.2", "debian-12": "3.11.2", "debian-13": "3.13.5", "debian-unstable": "3.14.10"}


@pytest.mark.parametrize("platform", TARGET_PYTHONS)
def test_pins_resolve_to_wheels_for_the_platforms_python(platform, tmp_path):
    python = TARGET_PYTHONS[platform]
    pins = pins_for_python(REQUIREMENTS, python)
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--python-version", python, "--only-binary=:all:", "--report", str(report), *pins],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    for pin in pins:
        name, version = pin.split("==")
        assert resolved[name.lower()] == version, (platform, pin)
    print(f"{platform} (Python {python}): " + " ".join(f"{k}=={v}" for k, v in sorted(resolved.items())))


def test_each_platform_gets_one_pin_per_package():
    for python in TARGET_PYTHONS.values():
        names = [pin.split("==")[0] for pin in pins_for_python(REQUIREMENTS, python)]
        assert sorted(names) == sorted(set(names)) == sorted(
            ["flask", "sqlalchemy", "pymysql", "cryptography", "gunicorn", "gevent"]), python
