"""The platform name the roles check (plugins/filter/platforms.py)."""
import pytest
from ansible_collections.flaskstack.stack.plugins.filter.platforms import flaskstack_platform


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
