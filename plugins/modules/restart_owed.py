#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Whether a service runs with inputs older than the files on disk: a change an
earlier run made but never applied (it failed or was cut off before its
handlers ran, or its restart failed)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: restart_owed
short_description: Find a restart or reload an earlier run owed a service
version_added: 1.0.0
author: flaskstack maintainers (!UNKNOWN)
description:
  - Compares when each unit's process started with the modification times of the
    files it reads at start. A file changed after the start means the change is
    not in effect, so a restart (or reload) is owed.
  - Directories count by their own mtime and their subdirectories' (a file
    written by copy or template, or a package pip installed, changes its
    directory's entries), so a large tree costs one stat per directory.
  - Reads only; reports changed when something is owed, so that the task can
    notify the handler that applies it.
  - Used by the mysql, haproxy and flaskapp roles of this collection, at their
    start, for changes an earlier run wrote but was cut off before its handlers ran.
  - Also reports whether systemd has loaded each unit's files as they are on disk
    (C(NeedDaemonReload)), since a unit file or drop-in written by a run cut off
    before its C(daemon-reload) leaves systemd running the old settings, such as an
    IP filter. That alone does not make the task changed.
  - Also reports each unit's C(ActiveState) and C(UnitFileState), read by the same
    C(systemctl show), so that a task which starts and enables a unit can be
    skipped where it already runs and is enabled; a rerun then makes one module
    run for all of them instead of one per unit.
  - Also reports, for the paths in O(files), what a task writing a file or
    creating a directory would compare (content checksum, mode, owner, group),
    in the shape of M(ansible.builtin.find)'s C(files), so that the roles skip a
    template, copy or directory task whose target is already as it would write
    it (the filters C(flaskstack.stack.file_current) and
    C(flaskstack.stack.directory_current)) in the same module run.
options:
  units:
    description:
      - systemd units that all read O(paths); a unit that is not running owes
        nothing (starting it applies everything).
      - Exactly one of O(units) and O(inputs).
    type: list
    elements: str
  paths:
    description: Files and directories the units in O(units) read when they start; missing ones are ignored.
    type: list
    elements: path
    default: []
  inputs:
    description:
      - Per unit, the files and directories it reads when it starts (absolute
        paths), for units that read different files (one module run for all of
        them). A unit with no paths is only reported in RV(states).
      - Exactly one of O(units) and O(inputs).
    type: dict
  reloads:
    description:
      - Per name, files a running unit rereads without a restart, on a reload
        that touches a marker file once it has succeeded (as MySQL rereads its
        TLS files). A reload is owed when one of them changed after both the
        unit's start and the marker's mtime. Reported in RV(stale) under the name.
      - Each value is a dict with C(unit) (the systemd unit), C(paths) (the
        files, absolute) and C(marker) (the marker file's absolute path; missing
        means never reloaded).
    type: dict
    default: {}
  files:
    description:
      - Files and directories to report in RV(files) (missing ones are left out); nothing is compared with them.
    type: list
    elements: path
    default: []
  listings:
    description:
      - Directories (absolute paths) whose entries to report in RV(listings), keyed by the path as
        given (missing ones are left out), such as a virtualenv's C(site-packages), whose
        C(NAME-VERSION.dist-info) entries say what is installed there (the filter
        C(flaskstack.stack.pins_missing)) without starting its Python.
    type: list
    elements: str
    default: []
  started:
    description:
      - V(main), when the unit's main process started (a restart replaces it);
      - V(newest_child), when its youngest child started (a reload starts new
        workers under the same master, as HAProxy's does).
    type: str
    choices: [main, newest_child]
    default: main
attributes:
  check_mode:
    support: full
    description: It only reads, so check mode reports what a real run would.
  diff_mode:
    support: none
    description: Nothing to show a diff of.
  platform:
    support: full
    platforms: posix
    description: Linux with systemd and /proc.
seealso:
  - name: systemd.unit properties (systemctl show)
    description: What C(ActiveState) and C(UnitFileState) mean.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemctl.html
notes:
  - The process start times come from /proc and the boot time from CLOCK_BOOTTIME,
    to a few hundredths of a second, so a file written just before a restart is not
    mistaken for one written after it.
"""

EXAMPLES = r"""
- name: Look for a restart an earlier run owed the app
  flaskstack.stack.restart_owed:
    units: [flaskapp@8000, flaskapp@8001]
    paths: [/opt/flaskapp/app, /opt/flaskapp/venv, /etc/flaskapp/flaskapp.env]
  notify: Restart the app

- name: Look for a reload an earlier run owed HAProxy
  flaskstack.stack.restart_owed:
    units: [haproxy]
    paths: [/etc/haproxy/haproxy.cfg]
    # A reload starts new workers under the same master.
    started: newest_child
  notify: Reload HAProxy

- name: Look for a TLS reload an earlier run owed MySQL (its handler touches the marker)
  flaskstack.stack.restart_owed:
    inputs:
      mysql: [/etc/mysql/conf.d/zz-flaskstack.cnf]
    reloads:
      mysql-tls:
        unit: mysql
        paths: [/etc/mysql/tls/server-cert.pem, /etc/mysql/tls/server-key.pem]
        marker: /etc/mysql/tls/.reloaded
  register: units

- name: Look at the server and its health check, which read different files
  flaskstack.stack.restart_owed:
    inputs:
      mysql: [/etc/mysql/conf.d/zz-flaskstack.cnf]
      flaskstack-mysql-check: [/usr/local/sbin/flaskstack-mysql-check]
  register: units

- name: Start the server and enable it at boot
  ansible.builtin.service:
    name: mysql
    state: started
    enabled: true
  when: "'mysql' not in units.running_and_enabled"
"""

RETURN = r"""
owed:
  description: Whether any unit started before one of the paths changed.
  type: bool
  returned: always
  sample: true
stale:
  description: >-
    Per unit whose process is older than its inputs: {unit: [paths changed since it started]};
    per name of O(reloads) whose files changed since the unit started and its marker was touched: {name: [paths]}.
  type: dict
  returned: always
  sample: {"haproxy": ["/etc/haproxy/haproxy.cfg"]}
states:
  description: Per unit, its C(ActiveState) and C(UnitFileState) (empty for a unit systemd does not know).
  type: dict
  returned: always
  sample: {"haproxy": {"ActiveState": "active", "UnitFileState": "enabled"}}
daemon_reload_owed:
  description: Whether a unit's file or drop-ins changed on disk since systemd last loaded them (C(NeedDaemonReload)).
  type: bool
  returned: always
  sample: false
running_and_enabled:
  description: The units that are active and enabled at boot, which a start-and-enable task can skip.
  type: list
  elements: str
  returned: always
  sample: ["haproxy"]
files:
  description: >-
    Each existing path of O(files), as M(ansible.builtin.find) with C(get_checksum) reports it: C(path), C(isreg)
    (a regular file, not a link), C(isdir) (a directory, not a link), C(checksum) (SHA-1 of the content, regular
    files only), C(mode) (four octal digits), C(pw_name) and C(gr_name).
  type: list
  elements: dict
  returned: always
  sample: [{"path": "/etc/haproxy/haproxy.cfg", "isreg": true, "isdir": false, "checksum": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "mode": "0640", "pw_name": "root", "gr_name": "haproxy"}]
listings:
  description: Per existing directory of O(listings), its entries' names, sorted.
  type: dict
  returned: always
  sample: {"/opt/flaskapp/venv/lib/python3.11/site-packages": ["flask", "flask-3.1.3.dist-info"]}
"""

import grp
import hashlib
import os
import pwd
import stat
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule


def boot_time():
    """Epoch seconds of the boot, to 10 ms (/proc/stat's btime is whole seconds:
    too coarse beside a file written a moment before a restart)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start(pid, btime, ticks_per_second):
    """Epoch seconds a process started, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command name (which may hold spaces), from field 3 on.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return btime + int(fields[19]) / ticks_per_second


def children(pid):
    """Direct children of a process, from every /proc entry's parent PID."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except OSError:
            continue
    return found


SHOWN = ("MainPID", "ActiveState", "UnitFileState", "NeedDaemonReload")


def unit_properties(units):
    """{unit: {MainPID, ActiveState, UnitFileState}} from one systemctl call,
    which prints a block per unit, in the order asked, separated by blank lines."""
    command = ["systemctl", "show"] + [arg for name in SHOWN for arg in ("-p", name)] + ["--"] + list(units)
    output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    return dict(zip(units, parse_show(output, len(units))))


def parse_show(output, count):
    """systemctl show's blocks as dicts (a missing property reads as empty)."""
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in output.strip("\n").split("\n\n")] if output.strip() else []
    blocks += [{}] * (count - len(blocks))
    return [{name: block.get(name, "") for name in SHOWN} for block in blocks[:count]]


def newest_mtime(path):
    """Latest mtime of a file, or of a directory and every directory below it
    (but Python's bytecode caches, which are not inputs)."""
    if not os.path.isdir(path):
        return os.stat(path).st_mtime
    newest = os.stat(path).st_mtime
    for root, dirs, _files in os.walk(path):
        dirs[:] = [name for name in dirs if name != "__pycache__"]
        for name in dirs:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue
    return newest


def file_state(path):
    """What a file-writing task compares, in find's shape; None if missing."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    state = {"path": path, "isreg": stat.S_ISREG(info.st_mode), "isdir": stat.S_ISDIR(info.st_mode),
             "mode": "%04o" % stat.S_IMODE(info.st_mode),
             "pw_name": name_of(pwd.getpwuid, info.st_uid), "gr_name": name_of(grp.getgrgid, info.st_gid)}
    if state["isreg"]:
        digest = hashlib.sha1()
        with open(path, "rb") as content:
            for block in iter(lambda: content.read(65536), b""):
                digest.update(block)
        state["checksum"] = digest.hexdigest()
    return state


def name_of(lookup, number):
    """A user's or group's name, or its number where it has none."""
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def directory_listings(paths):
    """{path as given: its entries' names, sorted} for each path that is a directory."""
    return {path: sorted(os.listdir(path)) for path in paths if os.path.isdir(path)}


def marker_time(path):
    """When a reload last succeeded (its marker's mtime), or 0 if never."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0


def stale_inputs(started_at, mtimes):
    """The paths changed after the process started, in the order given."""
    return [path for path, mtime in mtimes.items() if mtime > started_at]


def run_module():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "inputs": {"type": "dict"},
            "reloads": {"type": "dict", "default": {}},
            "files": {"type": "list", "elements": "path", "default": []},
            "listings": {"type": "list", "elements": "str", "default": []},
            "started": {"type": "str", "choices": ["main", "newest_child"], "default": "main"},
        },
        mutually_exclusive=[("units", "inputs")],
        required_one_of=[("units", "inputs")],
        supports_check_mode=True,
    )
    inputs = module.params["inputs"] or {unit: module.params["paths"] for unit in module.params["units"]}
    if not all(isinstance(paths, list) for paths in inputs.values()):
        module.fail_json(msg="inputs: each unit needs a list of paths")
    inputs = {unit: [str(path) for path in paths] for unit, paths in inputs.items()}
    reloads = module.params["reloads"]
    for name, reload in reloads.items():
        if not isinstance(reload, dict) or set(reload) != {"unit", "paths", "marker"} or \
                not isinstance(reload["paths"], list):
            module.fail_json(msg=f"reloads: {name} needs exactly unit, paths (a list) and marker")
    btime, ticks = boot_time(), os.sysconf("SC_CLK_TCK")
    units = list(dict.fromkeys([*inputs, *(reload["unit"] for reload in reloads.values())]))
    properties = unit_properties(units)

    def started_at(unit, started):
        """When the unit's process (or its youngest child) started; None if it does not run."""
        pid = int(properties[unit]["MainPID"] or 0)
        if not pid:
            return None
        pids = children(pid) if started == "newest_child" else []
        starts = [start for start in (process_start(p, btime, ticks) for p in pids or [pid]) if start is not None]
        return max(starts) if starts else None

    def mtimes(paths):
        return {str(path): newest_mtime(str(path)) for path in paths if os.path.exists(str(path))}

    stale = {}
    for unit, paths in inputs.items():
        started = started_at(unit, module.params["started"])
        changed_since = stale_inputs(started, mtimes(paths)) if started is not None else []
        if changed_since:
            stale[unit] = changed_since
    for name, reload in reloads.items():
        started = started_at(reload["unit"], "main")
        if started is None:
            continue
        changed_since = stale_inputs(max(started, marker_time(reload["marker"])), mtimes(reload["paths"]))
        if changed_since:
            stale[name] = changed_since
    states = {unit: {name: shown[name] for name in ("ActiveState", "UnitFileState")}
              for unit, shown in properties.items()}
    running_and_enabled = [unit for unit, state in states.items()
                           if state == {"ActiveState": "active", "UnitFileState": "enabled"}]
    daemon_reload_owed = any(shown["NeedDaemonReload"] == "yes" for shown in properties.values())
    files = [state for state in (file_state(str(path)) for path in module.params["files"]) if state]
    listings = directory_listings(module.params["listings"])
    module.exit_json(changed=bool(stale), owed=bool(stale), stale=stale, states=states,
                     daemon_reload_owed=daemon_reload_owed, running_and_enabled=running_and_enabled, files=files,
                     listings=listings)


if __name__ == "__main__":
    run_module()
