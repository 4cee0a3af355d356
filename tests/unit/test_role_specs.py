"""Each role's defaults/main.yml (the user's manual) and meta/argument_specs.yml
(what the run checks, and the README's tables) say the same thing; the shared
role's too."""
import pathlib

import jinja2
import pytest
import yaml

PROJECT = pathlib.Path(__file__).resolve().parents[2]
TIERS = ("mysql", "haproxy", "flaskapp")
# Each role, the prefix of its variables and the argument spec entry point that
# documents them (the shared role's is not `main`: see its meta/argument_specs.yml).
ROLES = {"shared": ("flaskstack", "defaults"), **{role: (role, "main") for role in TIERS}}


def load(role, path):
    return yaml.safe_load((PROJECT / "roles" / role / path).read_text())


def options(role):
    return load(role, "meta/argument_specs.yml")["argument_specs"][ROLES[role][1]]["options"]


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_and_every_role_option_has_a_default(role):
    prefix = ROLES[role][0]
    defaults = load(role, "defaults/main.yml")
    assert set(defaults) == {name for name in options(role) if name.startswith(prefix + "_")}
    # The only other option is the site's shared address, which the roles read.
    assert {name for name in options(role) if not name.startswith(prefix + "_")} <= {"flaskstack_address"}


@pytest.mark.parametrize("role", ROLES)
def test_literal_defaults_match_the_spec_and_derived_ones_are_described(role):
    defaults = load(role, "defaults/main.yml")
    spec = options(role)
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value:
            assert "default" not in spec[name], f"{name}: its default is derived, the spec must not state one"
            description = spec[name]["description"]
            assert "Default" in (" ".join(description) if isinstance(description, list) else description), name
        else:
            assert spec[name].get("default") == value, name


@pytest.mark.parametrize("role", ROLES)
def test_defaults_are_one_line_each(role):
    for line in (PROJECT / "roles" / role / "defaults" / "main.yml").read_text().splitlines():
        assert "{%" not in line and not line.rstrip().endswith((">-", "|", "|-")), (role, line)


@pytest.mark.parametrize("role", TIERS)
def test_tier_roles_depend_on_the_shared_values_and_list_no_platforms_of_their_own(role):
    meta = load(role, "meta/main.yml")
    assert meta["dependencies"] == [{"role": "flaskstack.stack.shared"}]
    # The platforms are the shared role's one list (vars/main.yml), which every role's check reads.
    assert "platforms" not in meta["galaxy_info"]
    assert "__flaskstack_supported_platforms" in (PROJECT / "roles" / role / "tasks" / "assert.yml").read_text()
    assert "supported_platforms" not in (PROJECT / "roles" / role / "vars" / "main.yml").read_text()


def test_the_reload_bound_and_the_queue_wait_follow_the_apps_longest_query():
    """HAProxy's hard-stop-after and timeout queue, and the app's /sleep bound,
    all come from flaskstack_query_max_seconds, so no reload cuts a query the
    app allows and no queued request gives up before the longest one ends."""
    shared = load("shared", "defaults/main.yml")
    haproxy, flaskapp = load("haproxy", "defaults/main.yml"), load("flaskapp", "defaults/main.yml")

    def render(template):
        return jinja2.Environment().from_string(template).render(shared)

    longest = shared["flaskstack_query_max_seconds"]
    assert float(render(flaskapp["flaskapp_sleep_max_seconds"])) == longest
    assert render(haproxy["haproxy_timeout_queue"]) == f"{longest}s"
    assert render(haproxy["haproxy_hard_stop_after"]) == f"{longest + 10}s"
