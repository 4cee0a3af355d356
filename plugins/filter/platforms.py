"""The platform name every role checks and picks its variables by: one rule
(flaskstack.stack.platform). The platforms the stack supports are listed once,
in the shared role (roles/shared/vars/main.yml)."""
from __future__ import annotations


def flaskstack_platform(facts):
    """'<Distribution>-<major version>' from a host's facts, e.g. Ubuntu-20,
    Debian-12; Debian testing and unstable, which have no version number (their
    facts say e.g. 'forky/sid'), are Debian-unstable."""
    distribution = facts["distribution"]
    major = str(facts["distribution_major_version"])
    if distribution == "Debian" and not major.isdigit():
        major = "unstable"
    return f"{distribution}-{major}"


class FilterModule:
    def filters(self):
        return {"platform": flaskstack_platform}
