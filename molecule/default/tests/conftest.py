"""Fixtures for the single-host scenario: `stack`, the whole stack on one test
host (molecule/resources/flaskstack_testlib.py, shared with the multi-host
scenario). With pytest-xdist, each platform's tests run in a worker of their own.

With --spread-over-hosts (the Oracle MySQL scenario: identical hosts, one
flavour), each test runs once, on whichever host is free: a worker per host,
each taking the next test (or the next module, where its tests share a costly
module fixture) when it is done with the last."""
import pathlib
import re
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# The observe fixture and its report at the end of the run, for this scenario too.
from flaskstack_testlib import Stack, host, observe, pytest_runtest_protocol, pytest_terminal_summary  # noqa: E402,F401


# Modules whose tests share no costly module fixture: spread test by test.
SPREAD_BY_TEST = ("test_stack.py", "test_security_and_faults.py")


def pytest_addoption(parser):
    parser.addoption("--spread-over-hosts", action="store_true",
                     help="run each test once, on whichever test host is free (one xdist worker per host)")


def pytest_xdist_make_scheduler(config, log):
    """One unit of work per test host ("[ansible://debian12...]" in the test's
    id, up to the first '-'), so a host's tests run in order, in one worker,
    while the hosts run side by side. (xdist's own loadgroup does not group
    with pytest 9 here: measured.) Spread over hosts: a unit per module, or per
    test in SPREAD_BY_TEST, handed to whichever worker is free."""
    from xdist.scheduler import LoadScopeScheduling

    class ByTestHost(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            match = re.search(r"\[ansible://([^\]-]+)", nodeid)
            return match.group(1) if match else nodeid

    class ByModuleOrTest(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module, _, test = nodeid.partition("::")
            return nodeid.split("[")[0] if module.endswith(SPREAD_BY_TEST) else module

    spread = config.getoption("spread_over_hosts")
    return (ByModuleOrTest if spread else ByTestHost)(config, log)


@pytest.fixture(scope="module")
def stack(host):
    return Stack(host)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "platform_independent: the roles' own logic and the app's, the same on every platform "
        "of a MySQL flavour (what the logs show, data and grants, how the stack answers a fault, a limit "
        "changed by rerun): runs on one host of the scenario (each scenario is one flavour), which keeps "
        "`make test` in its time budget; on a module (pytestmark), its tests go to one host together, "
        "as they share its fixtures")
    config.addinivalue_line(
        "markers", "host_independent: decided on the controller, by a role's file handling or by the app's "
        "own code, whatever the platform and the MySQL flavour (input checks, the platform check, a "
        "restored app file, the app's read retry): "
        "runs on one host of the default scenario (the others deselect it with -m)")
    config.addinivalue_line(
        "markers", "mariadb_only: what MariaDB alone does (no second password): the Oracle MySQL scenario "
        "deselects it with -m")


ONCE_PER_SCENARIO = ("platform_independent", "host_independent")


def _once_key(item):
    """What goes to one host together: a test's parameters, or a whole module marked as one."""
    module_marks = getattr(item.module, "pytestmark", [])
    module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
    if any(mark.name in ONCE_PER_SCENARIO for mark in module_marks):
        return item.module.__name__
    return item.originalname


def _test_host(item):
    host = getattr(getattr(item, "callspec", None), "params", {}).get("_testinfra_host")
    return host.backend.get_hostname() if host is not None else None


def pytest_collection_modifyitems(config, items):
    """Run each platform_independent or host_independent test on one test host
    only, the hosts taking turns (the first such test on the first platform of
    molecule.yml, the next on the second...), so that no worker carries them
    all. Spread over hosts, every test runs once: the first host's copy is
    kept (its id names that host, but the `host` fixture picks the worker's:
    pytest-xdist's [gw0] drives the first host, [gw1] the second).
    Deterministic, as pytest-xdist requires of every worker."""
    hosts = list(dict.fromkeys(name for name in map(_test_host, items) if name))
    if config.getoption("spread_over_hosts") and hosts:
        kept = [item for item in items if _test_host(item) in (hosts[0], None)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
        return
    chosen_host, keep, deselected = {}, [], []
    for item in items:
        name = _test_host(item)
        if name and any(item.get_closest_marker(mark) for mark in ONCE_PER_SCENARIO):
            # Every parameter of a test, or every test of a marked module, goes to the same host (they share fixtures).
            host = chosen_host.setdefault(_once_key(item), hosts[len(chosen_host) % len(hosts)])
            if name != host:
                deselected.append(item)
                continue
        keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep
