"""The app's pinned requirements install on every target's Python, proven
without those interpreters: pip resolves them for each version from PyPI,
binary wheels only, as the target's pip would (no compiler on targets).

pip evaluates environment markers against the interpreter running it, not
--python-version, so the markers are evaluated here for the target first."""
import json
import pathlib
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

REQUIREMENTS = pathlib.Path(__file__).resolve().parents[1] / "files" / "requirements.txt"
# The Python of each supported platform.
TARGET_PYTHONS = {"ubuntu-20.04": "3.8.10", "debian-11": "3.9.2", "debian-12": "3.11.2"}


def pins_for(python):
    env = {"python_version": python.rsplit(".", 1)[0], "python_full_version": python}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(env):
                yield f"{requirement.name}{requirement.specifier}"


@pytest.mark.parametrize("platform", TARGET_PYTHONS)
def test_pins_resolve_to_wheels_for_the_platforms_python(platform, tmp_path):
    python = TARGET_PYTHONS[platform]
    pins = list(pins_for(python))
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
