"""Each role's variable table, generated from its meta/argument_specs.yml into its README.

    python scripts/readme_variables.py          rewrite the tables in roles/<role>/README.md
    python scripts/readme_variables.py --check  fail if a role's README disagrees with its specs (make lint)

Each table sits in roles/<role>/README.md between `<!-- variables: ROLE -->` and
`<!-- end variables: ROLE -->`; the rest of the README is written by hand.
"""
import argparse
import pathlib
import re
import sys

import yaml

PROJECT = pathlib.Path(__file__).resolve().parents[1]
ROLES = ("shared", "mysql", "haproxy", "flaskapp")
# The entry point whose options a role's table shows: the shared role documents
# its values under `defaults` (a `main` spec would be checked each time it runs).
ENTRY_POINT = {"shared": "defaults"}


def readme(role):
    return PROJECT / "roles" / role / "README.md"


def options(role):
    specs = yaml.safe_load((PROJECT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][ENTRY_POINT.get(role, "main")]["options"]


def cell(text):
    return " ".join(text if isinstance(text, list) else [text]).replace("|", "\\|")


def default_cell(spec):
    if "default" not in spec:
        return "derived"
    return "`" + yaml.safe_dump(spec["default"], default_flow_style=True, width=1000).strip().removesuffix("...").strip() + "`"


def table(role):
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {default_cell(spec)} | {cell(spec['description'])} |"
             for name, spec in options(role).items()]
    return "\n".join(rows)


def render(role, text):
    """The README's text with the role's table regenerated between its markers."""
    pattern = re.compile(rf"(<!-- variables: {role} -->\n).*?(<!-- end variables: {role} -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{readme(role).relative_to(PROJECT)} has no "
                         f"<!-- variables: {role} --> ... <!-- end variables: {role} --> block")
    return pattern.sub(lambda match: match.group(1) + table(role) + "\n" + match.group(2), text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a role's README disagrees with its specs")
    check = parser.parse_args().check
    stale = []
    for role in ROLES:
        path = readme(role)
        if not path.is_file():
            sys.exit(f"{path.relative_to(PROJECT)} is missing: each role's README holds its variable table")
        current = path.read_text()
        wanted = render(role, current)
        if wanted == current:
            continue
        stale.append(str(path.relative_to(PROJECT)))
        if not check:
            path.write_text(wanted)
            print(f"{stale[-1]}: variable table rewritten")
    if check:
        if stale:
            sys.exit(f"{', '.join(stale)}: the variable table disagrees with meta/argument_specs.yml: "
                     "run python scripts/readme_variables.py")
        print("every role's README matches its argument specs")


if __name__ == "__main__":
    main()
