"""Fixtures for the single-host scenario; the helpers live in
molecule/resources/flaskstack_testlib.py, shared with the multi-host scenario."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "resources"))
# Re-exported: the test modules import helpers and constants from here.
from flaskstack_testlib import (  # noqa: E402,F401
    APP_ENV_FILE, APP_PORTS, HAPROXY_CONFIG, PROJECT, STATS_SOCKET, Response, app_connection_tls, app_sql_run,
    changed_tasks, failure_message, failure_text, haproxy_command, haproxy_stats, http_get, main_pid_of,
    mysql_unit, recap, rerun_on, root_sql_run, run_playbook, wait_for)


@pytest.fixture
def http(host):
    return lambda path, port=8000, method="GET": http_get(host, path, port, method)


@pytest.fixture
def root_sql(host):
    return lambda query: root_sql_run(host, query)


@pytest.fixture
def app_sql(host):
    def run(query, port=5555):
        result = app_sql_run(host, query, port)
        assert result.rc == 0, result.stderr
        return result.stdout
    return run


@pytest.fixture
def rerun(host):
    return lambda *args, **extra_vars: rerun_on(host, *args, **extra_vars)


@pytest.fixture
def main_pid(host):
    return lambda unit: main_pid_of(host, unit)


@pytest.fixture
def mysql_service(host):
    return mysql_unit(host)
