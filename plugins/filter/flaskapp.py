"""Filters of the flaskapp role (flaskstack.stack.pins_for_python, pins_missing)."""
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError


def _requirement_class():
    """packaging's Requirement, imported when first needed: Ansible loads every
    filter file of the collection in each task's worker process, and that
    import alone cost a few percent of a run's controller time."""
    try:
        from packaging.requirements import Requirement  # pylint: disable=import-outside-toplevel
    except ImportError:  # ansible-core requires packaging; an odd controller may still lack it
        return None
    return Requirement


def pins_for_python(requirements_text, python_full_version):
    """The requirement lines of a requirements.txt that apply to one Python
    version, markers evaluated and dropped: ["flask==3.0.3", ...].

    Passing pip plain pins (not a requirements file) lets Ansible's pip module
    compare them with what is installed, so check mode reports real changes."""
    requirement_class = _requirement_class()
    if requirement_class is None:
        raise AnsibleFilterError("flaskstack.stack.pins_for_python needs the Python library packaging on the controller")
    version = str(python_full_version)
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version):
        raise AnsibleFilterError(f"pins_for_python needs a version like 3.9.2, not {version!r}")
    env = {"python_version": ".".join(version.split(".")[:2]), "python_full_version": version}
    pins = []
    for line in requirements_text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = requirement_class(line)
            if requirement.marker is None or requirement.marker.evaluate(env):
                pins.append(f"{requirement.name}{requirement.specifier}")
    return pins


def _project_key(name):
    """A project's name as PEP 503 compares them: Flask, flask and FLASK are one, as are zope.interface and zope_interface."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_missing(pins, site_packages_entries):
    """The pins (name==version) that a virtualenv does not hold, from its
    site-packages' entries: each installed distribution has a directory
    NAME-VERSION.dist-info (its name's dashes written as underscores), so the
    answer needs no Python started in the virtualenv. All of them where the
    directory is empty or missing (no entries)."""
    installed = {}
    for entry in site_packages_entries or []:
        if entry.endswith(".dist-info"):
            name, _dash, version = entry[:-len(".dist-info")].partition("-")
            installed[_project_key(name)] = version
    missing = []
    for pin in pins:
        name, separator, version = str(pin).partition("==")
        if not separator:
            raise AnsibleFilterError(f"pins_missing needs pins like flask==3.1.3, not {pin!r}")
        if installed.get(_project_key(name.split("[", 1)[0].strip())) != version.strip():
            missing.append(pin)
    return missing


class FilterModule:
    def filters(self):
        return {"pins_for_python": pins_for_python, "pins_missing": pins_missing}
