"""Each role's defaults/main.yml (the user's manual) and meta/argument_specs.yml
(what the run checks, and the README's tables) say the same thing."""
import pathlib

import pytest
import yaml

PROJECT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ("mysql", "haproxy", "flaskapp")


def load(role, path):
    return yaml.safe_load((PROJECT / "roles" / role / path).read_text())


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_and_every_role_option_has_a_default(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == {name for name in options if name.startswith(role + "_")}
    # The only other option is the site's shared address, which the roles read.
    assert {name for name in options if not name.startswith(role + "_")} <= {"flaskstack_address"}


@pytest.mark.parametrize("role", ROLES)
def test_literal_defaults_match_the_spec_and_derived_ones_are_described(role):
    defaults = load(role, "defaults/main.yml")
    options = load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value:
            assert "default" not in options[name], f"{name}: its default is derived, the spec must not state one"
            description = options[name]["description"]
            assert "Default" in (" ".join(description) if isinstance(description, list) else description), name
        else:
            assert options[name].get("default") == value, name


def test_defaults_are_one_line_each():
    for role in ROLES:
        for line in (PROJECT / "roles" / role / "defaults" / "main.yml").read_text().splitlines():
            assert "{%" not in line and not line.rstrip().endswith((">-", "|", "|-")), (role, line)


# Galaxy's release names in meta/main.yml, as the roles' platform names (filter_plugins/flaskstack_platform.py).
RELEASES = {"focal": "Ubuntu-20", "jammy": "Ubuntu-22", "noble": "Ubuntu-24",
            "bullseye": "Debian-11", "bookworm": "Debian-12", "trixie": "Debian-13", "sid": "Debian-unstable"}


@pytest.mark.parametrize("role", ROLES)
def test_the_platforms_a_role_accepts_are_those_its_metadata_lists(role):
    accepted = load(role, "vars/main.yml")[f"__{role}_supported_platforms"]
    listed = [RELEASES[version] for platform in load(role, "meta/main.yml")["galaxy_info"]["platforms"]
              for version in platform["versions"]]
    assert sorted(accepted) == sorted(listed)


def test_every_role_accepts_the_same_platforms():
    # The stack runs on one host as often as on many: a platform one role refuses is refused for all.
    assert len({tuple(sorted(load(role, "vars/main.yml")[f"__{role}_supported_platforms"])) for role in ROLES}) == 1


def test_the_reload_bound_and_the_queue_wait_follow_the_apps_longest_query():
    """HAProxy's hard-stop-after and timeout queue, and the app's /sleep bound,
    all come from flaskstack_query_max_seconds, so no reload cuts a query the
    app allows and no queued request gives up before the longest one ends."""
    import jinja2

    shared = yaml.safe_load((PROJECT / "playbooks" / "group_vars" / "all" / "main.yml").read_text())
    haproxy, flaskapp = load("haproxy", "defaults/main.yml"), load("flaskapp", "defaults/main.yml")

    def render(template):
        return jinja2.Environment().from_string(template).render(shared)

    longest = shared["flaskstack_query_max_seconds"]
    assert float(render(flaskapp["flaskapp_sleep_max_seconds"])) == longest
    assert render(haproxy["haproxy_timeout_queue"]) == f"{longest}s"
    assert render(haproxy["haproxy_hard_stop_after"]) == f"{longest + 10}s"
