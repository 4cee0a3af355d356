"""HAProxy's `show stat` CSV, parsed once for every test and every script the
tests run on a host. Standard library only: it also runs on the targets' Python
(3.8+), shipped there with the script that needs it (flaskstack_testlib.run_script)."""


def parse_show_stat(text):
    """`show stat` output as {(proxy, server): {column: value}}; servers' summary
    lines are named FRONTEND and BACKEND, as HAProxy names them."""
    lines = text.splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = (dict(zip(header, line.split(","))) for line in lines[1:] if line)
    return {(row["pxname"], row["svname"]): row for row in rows}
