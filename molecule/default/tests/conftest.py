"""Fixtures for the single-host scenario: `stack`, the whole stack on one test
host (molecule/resources/flaskstack_testlib.py, shared with the multi-host
scenario). With pytest-xdist, each platform's tests run in a worker of their own."""
import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# The observe fixture and its report at the end of the run, for this scenario too.
from flaskstack_testlib import Stack, observe, pytest_terminal_summary  # noqa: E402,F401


def pytest_xdist_make_scheduler(config, log):
    """One unit of work per test host ("[ansible://debian11...]" in the test's
    id, up to the first '-'), so a host's tests run in order, in one worker,
    while the hosts run side by side. (xdist's own loadgroup does not group
    with pytest 9 here: measured.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByTestHost(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            match = re.search(r"\[ansible://([^\]-]+)", nodeid)
            return match.group(1) if match else nodeid

    return ByTestHost(config, log)


@pytest.fixture(scope="module")
def stack(host):
    return Stack(host)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "platform_independent: the role's own logic, the same on every platform of a MySQL "
        "flavour (input checks, what the logs show, data and file handling): runs on the scenario's "
        "first host only (each scenario is one flavour), which keeps `make test` in its time budget")


def pytest_collection_modifyitems(config, items):
    """Deselect platform_independent tests on every test host but the first
    (the first platform of molecule.yml: Debian 11 here, the one closest to
    Ubuntu 20.04). Deterministic, as pytest-xdist requires of every worker."""
    first_host, keep, deselected = None, [], []
    for item in items:
        host = getattr(getattr(item, "callspec", None), "params", {}).get("_testinfra_host")
        name = host.backend.get_hostname() if host is not None else None
        first_host = first_host or name
        if name and name != first_host and item.get_closest_marker("platform_independent"):
            deselected.append(item)
        else:
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
