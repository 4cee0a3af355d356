"""Fixtures for talking to the stack on a test host: HTTP through gunicorn, SQL
through HAProxy or straight to MySQL, and the playbook itself."""
import json
import os
import pathlib
import re
import subprocess

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[3]
APP_ENV_FILE = "/etc/flaskapp/flaskapp.env"


class Response:
    def __init__(self, status, body, seconds):
        self.status, self.body, self.seconds = status, body, seconds

    def json(self):
        return json.loads(self.body)


@pytest.fixture
def http(host):
    """GET a path from one gunicorn instance; returns status, body and seconds."""

    def get(path, port=8000, method="GET"):
        out = host.check_output(
            "curl -sS -X %s -w '\\n%%{http_code} %%{time_total}' http://127.0.0.1:%s%s",
            method, str(port), path)
        body, _, tail = out.rpartition("\n")
        status, seconds = tail.split()
        return Response(int(status), body, float(seconds))

    return get


def _mysql(host, query, *client_args):
    return host.check_output(
        "mysql --batch --skip-column-names %s -e %s", " ".join(client_args), query)


@pytest.fixture
def root_sql(host):
    """Run SQL as MySQL's root over the unix socket, as an operator would."""
    return lambda query: _mysql(host, query)


@pytest.fixture
def app_sql(host):
    """Run SQL as the app's account through HAProxy. The password is read inside
    the host from the app's root-only environment file and passed to the client
    in its environment, never on a command line."""

    def run(query, port=5555):
        return host.check_output(
            "set -a; . %s; MYSQL_PWD=\"$FLASKAPP_DB_PASSWORD\" "
            "mysql --batch --skip-column-names -h 127.0.0.1 -P %s -u \"$FLASKAPP_DB_USER\" -e %s",
            APP_ENV_FILE, str(port), query)

    return run


@pytest.fixture
def mysql_service(host):
    return "mysql" if host.system_info.distribution == "ubuntu" else "mariadb"


@pytest.fixture(scope="session")
def playbook():
    """Run playbooks/site.yml against the scenario's inventory, as molecule does."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])

    def run(*args):
        return subprocess.run(
            ["ansible-playbook", "-i", inventory, str(PROJECT / "playbooks" / "site.yml"), *args],
            capture_output=True, text=True, check=False)

    return run


def recap(output, hostname):
    """The PLAY RECAP counters of one host, e.g. {'ok': 40, 'changed': 0, ...}."""
    match = re.search(rf"^{re.escape(hostname)}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP line for {hostname}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
