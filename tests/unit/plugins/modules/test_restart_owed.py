"""flaskstack.stack.restart_owed: when a process started, against the files it reads."""
import os
import subprocess
import time

from ansible_collections.flaskstack.stack.plugins.modules.restart_owed import (
    boot_time, children, newest_mtime, parse_show, process_start, stale_inputs)


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


def test_systemctl_shows_a_block_per_unit_in_the_order_asked():
    shown = ("MainPID=812\nActiveState=active\nUnitFileState=enabled\n\n"
             "MainPID=0\nActiveState=inactive\nUnitFileState=\n")
    assert parse_show(shown, 3) == [
        {"MainPID": "812", "ActiveState": "active", "UnitFileState": "enabled"},
        {"MainPID": "0", "ActiveState": "inactive", "UnitFileState": ""},
        # systemctl said nothing of the third: nothing is known of it.
        {"MainPID": "", "ActiveState": "", "UnitFileState": ""},
    ]
    assert parse_show("", 1) == [{"MainPID": "", "ActiveState": "", "UnitFileState": ""}]
