"""The README's variable tables, generated from each role's meta/argument_specs.yml.

    python scripts/readme_variables.py          rewrite the tables in README.md
    python scripts/readme_variables.py --check  fail if README.md disagrees with the specs (make lint)

Each table sits between `<!-- variables: ROLE -->` and `<!-- end variables: ROLE -->`.
The tier roles' tables must be there; the shared role's (its `defaults` entry
point) is kept up to date once README.md has its markers.
"""
import argparse
import pathlib
import re
import sys

import yaml

PROJECT = pathlib.Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
ROLES = ("mysql", "haproxy", "flaskapp")
# Roles whose table is optional, with the entry point that documents them.
OPTIONAL = {"shared": "defaults"}


def options(role):
    specs = yaml.safe_load((PROJECT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][OPTIONAL.get(role, "main")]["options"]


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


def render(readme):
    for role in (*ROLES, *OPTIONAL):
        pattern = re.compile(rf"(<!-- variables: {role} -->\n).*?(<!-- end variables: {role} -->)", re.DOTALL)
        if not pattern.search(readme):
            if role in OPTIONAL:
                continue
            raise SystemExit(f"README.md has no <!-- variables: {role} --> ... <!-- end variables: {role} --> block")
        readme = pattern.sub(lambda match, role=role: match.group(1) + table(role) + "\n" + match.group(2), readme)
    return readme


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md disagrees with the specs")
    current = README.read_text()
    wanted = render(current)
    if parser.parse_args().check:
        if wanted != current:
            sys.exit("README.md's variable tables disagree with meta/argument_specs.yml: "
                     "run python scripts/readme_variables.py")
        print("README.md's variable tables match the argument specs")
    elif wanted != current:
        README.write_text(wanted)
        print("README.md: variable tables rewritten")


if __name__ == "__main__":
    main()
