"""`make bench`: how fast playbooks/site.yml provisions, and what HAProxy costs
the stack, each figure measured in one run beside its baseline. Writes
docs/benchmarks.md, .png and .json and prints the tables.

A benchmark, not a test: it records what it measured and never fails on noise.
It fails only when something it drives fails (a playbook run, a tool).

    bench/run.py                 measure everything (about an hour; settings.py lists the environment)
    bench/run.py --report-only   rewrite the report and plot from docs/benchmarks.json, measuring nothing

The parts: settings.py (what is measured), driver.py (the container and the
playbook), ssh_provisioning.py, provisioning.py, http_load.py, sql_load.py,
report.py and report.md.j2.
"""
import datetime
import json
import os
import sys

from driver import log, run, sh
from http_load import WRK_REPORT, measure_http
from provisioning import measure_knobs, measure_provisioning
from report import int_keys, machine, versions, write_report
from settings import CONTAINER, DOCKER_FLAGS, DOCS, IMAGE, KNOB_RUNS, RUNS, SECONDS
from sql_load import measure_sql
from ssh_provisioning import measure_ssh_provisioning


def main():
    if sys.argv[1:] == ["--report-only"]:
        raw = int_keys(json.loads((DOCS / "benchmarks.json").read_text()))
        raw.setdefault("settings", {"image": IMAGE, "runs": RUNS, "knob_runs": KNOB_RUNS, "seconds": SECONDS})
        write_report(raw)
        return
    if not DOCKER_FLAGS:
        sys.exit("run it with `make bench` (BENCH_DOCKER_FLAGS unset)")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    log(f"{host['cores']} cores, {host['memory']}; image {IMAGE}; {RUNS} runs; {SECONDS}s load runs")
    ssh = measure_ssh_provisioning()
    provisioning = measure_provisioning()
    knobs = measure_knobs()
    log("installing wrk, sysbench and curl in the container (Debian packages)")
    sh("apt-get install -y -q wrk sysbench curl > /dev/null 2>&1 || "
       "(apt-get update -q > /dev/null && apt-get install -y -q wrk sysbench curl > /dev/null)")
    sh("cat > /tmp/report.lua", stdin=WRK_REPORT)
    tools = versions()
    http = measure_http()
    sql = measure_sql()
    DOCS.mkdir(exist_ok=True)
    raw = {"when": when, "settings": {"image": IMAGE, "runs": RUNS, "knob_runs": KNOB_RUNS, "seconds": SECONDS},
           "machine": host, "versions": tools, "provisioning": provisioning, "ssh": ssh, "knobs": knobs, "http": http, "sql": sql}
    (DOCS / "benchmarks.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    write_report(raw)
    if os.environ.get("BENCH_KEEP") != "1":
        run(["docker", "rm", "-f", CONTAINER], check=False)


if __name__ == "__main__":
    main()
