"""Fixtures for this scenario's own tests (the host cache, the reboot): the
single-host suite's `stack` (this scenario runs molecule/default/tests, whose
conftest does not reach this directory)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# (Its report of measured figures comes from the suite's conftest, loaded in the same run.)
from flaskstack_testlib import Stack, host, observe  # noqa: E402,F401


@pytest.fixture(scope="module")
def stack(host):
    return Stack(host)


# The suite's tests that this scenario's own prove on Oracle MySQL, as part of
# a costlier run: the host cache's fixture binds MySQL to the host's own
# address over the package's loopback default, and back.
PROVEN_HERE = {"test_the_roles_settings_win_over_the_packages_loopback_default": "test_host_cache.py"}


def pytest_collection_modifyitems(config, items):
    """This directory's tests after the whole single-host suite, and the reboot
    last, whatever order the files were passed in (a stable sort: the suite
    keeps its own order). The suite's tests in PROVEN_HERE are left out."""
    here = pathlib.Path(__file__).resolve().parent
    proven_here = [item for item in items if item.originalname in PROVEN_HERE]
    if proven_here:
        config.hook.pytest_deselected(items=proven_here)
        items[:] = [item for item in items if item not in proven_here]
    items.sort(key=lambda item: (item.path.parent == here, item.path.name == "test_reboot.py"))
