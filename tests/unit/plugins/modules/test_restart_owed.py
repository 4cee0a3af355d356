"""flaskstack.stack.restart_owed: when a process started, against the files it
reads; and the files' state a file-writing task compares."""
import grp
import hashlib
import os
import pwd
import subprocess
import time

from ansible_collections.flaskstack.stack.plugins.modules.restart_owed import (
    boot_time, children, directory_listings, file_state, marker_time, newest_mtime, parse_show, process_start,
    stale_inputs)


def test_a_process_start_is_placed_to_a_few_hundredths_of_a_second():
    before = time.time()
    child = subprocess.Popen(["sleep", "5"])
    try:
        started = process_start(child.pid, boot_time(), os.sysconf("SC_CLK_TCK"))
        assert before - 0.05 <= started <= time.time() + 0.05
        assert child.pid in children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert process_start(child.pid, boot_time(), os.sysconf("SC_CLK_TCK")) is None


def test_a_file_written_inside_a_tree_dates_the_tree(tmp_path):
    deep = tmp_path / "venv" / "lib" / "site-packages"
    deep.mkdir(parents=True)
    os.utime(deep, (1000, 1000))
    os.utime(deep.parent, (1000, 1000))
    os.utime(tmp_path / "venv", (1000, 1000))
    assert newest_mtime(str(tmp_path / "venv")) == 1000
    # A package installed (an entry added to a directory deep down).
    (deep / "newpkg").mkdir()
    assert newest_mtime(str(tmp_path / "venv")) > 1000
    single = tmp_path / "haproxy.cfg"
    single.write_text("x")
    os.utime(single, (2000, 2000))
    assert newest_mtime(str(single)) == 2000


def test_only_inputs_changed_after_the_start_are_stale():
    mtimes = {"/etc/app.env": 100.0, "/opt/app": 250.5}
    assert stale_inputs(200.0, mtimes) == ["/opt/app"]
    assert stale_inputs(300.0, mtimes) == []


def test_a_reload_since_the_start_applies_what_changed_before_it(tmp_path):
    """A file a unit rereads on reload counts as applied at the later of the
    unit's start and the reload's marker; no marker, never reloaded."""
    marker = tmp_path / ".reloaded"
    assert marker_time(str(marker)) == 0
    mtimes = {"/etc/mysql/tls/server-cert.pem": 250.0}
    assert stale_inputs(max(200.0, marker_time(str(marker))), mtimes) == ["/etc/mysql/tls/server-cert.pem"]
    marker.write_text("")
    os.utime(marker, (300, 300))
    assert stale_inputs(max(200.0, marker_time(str(marker))), mtimes) == []
    # Changed again after that reload: owed again.
    assert stale_inputs(max(200.0, marker_time(str(marker))), {"/etc/mysql/tls/server-cert.pem": 350.0}) != []


def test_systemctl_shows_a_block_per_unit_in_the_order_asked():
    shown = ("MainPID=812\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=yes\n\n"
             "MainPID=0\nActiveState=inactive\nUnitFileState=\nNeedDaemonReload=no\n")
    unknown = {"MainPID": "", "ActiveState": "", "UnitFileState": "", "NeedDaemonReload": ""}
    assert parse_show(shown, 3) == [
        {"MainPID": "812", "ActiveState": "active", "UnitFileState": "enabled", "NeedDaemonReload": "yes"},
        {"MainPID": "0", "ActiveState": "inactive", "UnitFileState": "", "NeedDaemonReload": "no"},
        # systemctl said nothing of the third: nothing is known of it.
        unknown,
    ]
    assert parse_show("", 1) == [unknown]


def test_a_file_is_reported_as_find_reports_it(tmp_path):
    """The shape flaskstack.stack.file_current reads: find's, with get_checksum."""
    config = tmp_path / "haproxy.cfg"
    config.write_bytes(b"global\n  maxconn 100\n")
    config.chmod(0o640)
    state = file_state(str(config))
    assert state == {"path": str(config), "isreg": True, "isdir": False, "checksum": hashlib.sha1(b"global\n  maxconn 100\n").hexdigest(),
                     "mode": "0640", "pw_name": pwd.getpwuid(os.getuid())[0], "gr_name": grp.getgrgid(os.getgid())[0]}
    assert file_state(str(tmp_path / "missing")) is None


def test_a_link_is_not_a_regular_file_and_has_no_checksum(tmp_path):
    target = tmp_path / "target"
    target.write_text("x")
    (tmp_path / "link").symlink_to(target)
    state = file_state(str(tmp_path / "link"))
    assert state["isreg"] is False and state["isdir"] is False and "checksum" not in state


def test_a_directory_is_reported_without_a_checksum(tmp_path):
    (tmp_path / "conf.d").mkdir(mode=0o750)
    state = file_state(str(tmp_path / "conf.d"))
    assert state["isdir"] is True and state["isreg"] is False and state["mode"] == "0750" and "checksum" not in state


def test_a_listing_is_keyed_by_the_path_as_given_and_leaves_out_what_is_no_directory(tmp_path):
    """The role looks its listing up by the string it passed: no expansion, no normalisation."""
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    (site / "flask-3.1.3.dist-info").mkdir(parents=True)
    (site / "flask").mkdir()
    (site / "README.txt").write_text("")
    given = f"{tmp_path}//lib/python3.11/site-packages"
    assert directory_listings([given, str(tmp_path / "missing"), str(site / "README.txt")]) == {
        given: ["README.txt", "flask", "flask-3.1.3.dist-info"]}
