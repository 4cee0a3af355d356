"""Fixtures for this scenario's own tests (the rotation, the reboot): the
single-host suite's `stack` (this scenario runs molecule/default/tests, whose
conftest does not reach this directory)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# (Its report of measured figures comes from the suite's conftest, loaded in the same run.)
from flaskstack_testlib import Stack, host, observe, pytest_runtest_protocol  # noqa: E402,F401


@pytest.fixture(scope="module")
def stack(host):
    return Stack(host)


def pytest_collection_modifyitems(config, items):
    """This directory's tests after the whole single-host suite, and the reboot
    last, whatever order the files were passed in (a stable sort: the suite
    keeps its own order)."""
    here = pathlib.Path(__file__).resolve().parent
    items.sort(key=lambda item: (item.path.parent == here, item.path.name == "test_reboot.py"))
