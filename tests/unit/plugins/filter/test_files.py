"""flaskstack.stack.file_current and directory_current (plugins/filter/files.py):
a file is current only with the same content, mode, owner and group, a
directory with the same mode, owner and group; anything else lets the task
that writes it run."""
import hashlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.flaskstack.stack.plugins.filter.files import flaskstack_directory_current as directory_current
from ansible_collections.flaskstack.stack.plugins.filter.files import flaskstack_file_current as file_current

CONTENT = "[mysqld]\nbind-address = 127.0.0.1\n"
PATH = "/etc/mysql/conf.d/zz-flaskstack.cnf"


def found(**overrides):
    entry = {"path": PATH, "isreg": True, "checksum": hashlib.sha1(CONTENT.encode()).hexdigest(), "mode": "0644",
             "pw_name": "root", "gr_name": "root", **overrides}
    return [{"path": "/etc/mysql/conf.d/other.cnf", "isreg": True, "checksum": "0" * 40, "mode": "0644",
             "pw_name": "root", "gr_name": "root"}, entry]


def test_the_same_file_is_current():
    assert file_current(found(), PATH, CONTENT, "0644")


@pytest.mark.parametrize("overrides", [
    {"checksum": hashlib.sha1(b"[mysqld]\nbind-address = 0.0.0.0\n").hexdigest()},
    {"mode": "0666"}, {"pw_name": "mysql"}, {"gr_name": "mysql"}, {"isreg": False}, {"checksum": None}],
    ids=["content", "mode", "owner", "group", "not-a-regular-file", "no-checksum"])
def test_any_difference_is_not_current(overrides):
    assert not file_current(found(**overrides), PATH, CONTENT, "0644")


def test_the_content_differs_by_a_trailing_newline():
    assert not file_current(found(), PATH, CONTENT.rstrip("\n"), "0644")


def test_a_file_find_did_not_list_is_not_current():
    assert not file_current([], PATH, CONTENT, "0644")
    assert not file_current(found(), "/etc/mysql/conf.d/missing.cnf", CONTENT, "0644")


def test_the_owner_and_group_asked_for():
    assert not file_current(found(pw_name="root", gr_name="haproxy"), PATH, CONTENT, "0640", "root", "haproxy")
    assert file_current(found(gr_name="haproxy", mode="0640"), PATH, CONTENT, "0640", "root", "haproxy")


def test_unicode_content_is_hashed_as_utf8():
    text = "# café\n"
    entry = found(checksum=hashlib.sha1(text.encode("utf-8")).hexdigest())
    assert file_current(entry, PATH, text, "0644")


def test_not_a_list_of_files_is_an_error():
    with pytest.raises(AnsibleFilterError):
        file_current({"files": []}, PATH, CONTENT, "0644")


DIRECTORY = {"path": "/etc/prometheus", "isreg": False, "isdir": True, "mode": "0755", "pw_name": "root", "gr_name": "root"}


def test_the_same_directory_is_current():
    assert directory_current([DIRECTORY], "/etc/prometheus", "0755")


@pytest.mark.parametrize("overrides", [{"mode": "0777"}, {"pw_name": "prometheus"}, {"gr_name": "adm"}, {"isdir": False}],
                         ids=["mode", "owner", "group", "not-a-directory"])
def test_a_directory_that_differs_is_not_current(overrides):
    assert not directory_current([{**DIRECTORY, **overrides}], "/etc/prometheus", "0755")


def test_a_directory_not_listed_is_not_current():
    assert not directory_current([DIRECTORY], "/etc/mysql/tls", "0750", "root", "mysql")


def test_a_file_is_not_a_current_directory():
    assert not directory_current(found(), PATH, "0644")
