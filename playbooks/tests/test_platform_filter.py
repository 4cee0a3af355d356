"""The platform name the roles check (playbooks/filter_plugins/flaskstack_platform.py)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "filter_plugins"))
from flaskstack_platform import flaskstack_platform  # noqa: E402


@pytest.mark.parametrize("distribution, major, expected", [
    ("Ubuntu", "20", "Ubuntu-20"),
    ("Ubuntu", "24", "Ubuntu-24"),
    ("Debian", "11", "Debian-11"),
    ("Debian", "13", "Debian-13"),
    # Facts of Debian unstable and testing: no version number.
    ("Debian", "forky/sid", "Debian-unstable"),
    ("Debian", "n/a", "Debian-unstable"),
])
def test_platform_names(distribution, major, expected):
    assert flaskstack_platform({"distribution": distribution, "distribution_major_version": major}) == expected
