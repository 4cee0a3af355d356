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
from ansible.errors import AnsibleFilterError
from ansible_collections.flaskstack.stack.plugins.filter.flaskapp import pins_for_python, pins_missing

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


# A virtualenv's site-packages as pip leaves it: distributions' dist-info
# directories (names as each project's wheel writes them), their packages, and
# the rest.
SITE_PACKAGES = ["_distutils_hack", "flask", "flask-3.1.3.dist-info", "gevent", "gevent-25.9.1.dist-info",
                 "PyMySQL-1.2.4.dist-info", "pymysql", "SQLAlchemy-2.0.44.dist-info", "sqlalchemy",
                 "zope.interface-7.2.dist-info", "zope", "pip-25.0.dist-info", "README.txt"]


def test_pins_installed_at_their_version_are_not_missing_whatever_the_names_case():
    assert pins_missing(["flask==3.1.3", "pymysql==1.2.4", "sqlalchemy==2.0.44", "gevent==25.9.1"], SITE_PACKAGES) == []
    assert pins_missing(["zope_interface==7.2", "Zope.Interface==7.2"], SITE_PACKAGES) == []


def test_a_pin_at_another_version_or_not_installed_is_missing_in_the_order_given():
    pins = ["gunicorn==23.0.0", "flask==3.0.3", "sqlalchemy==2.0.44", "cryptography==46.0.3"]
    assert pins_missing(pins, SITE_PACKAGES) == ["gunicorn==23.0.0", "flask==3.0.3", "cryptography==46.0.3"]


def test_every_pin_is_missing_where_there_is_no_virtualenv_yet():
    pins = pins_for_python(REQUIREMENTS, TARGET_PYTHONS["debian-12"])
    assert pins_missing(pins, []) == pins == pins_missing(pins, None)


def test_what_is_not_a_pin_is_refused():
    with pytest.raises(AnsibleFilterError, match="pins like"):
        pins_missing(["flask>=3"], SITE_PACKAGES)
