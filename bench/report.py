"""The report: docs/benchmarks.md (rendered from report.md.j2), the latency
plot and the tables, from the figures a run measured (docs/benchmarks.json)."""
import os
import pathlib
import platform
import re
import statistics

import jinja2

from driver import run, sh
from settings import CONCURRENCY, DOCS, SQL_REPEATS, SYSBENCH_THREADS

TEMPLATE = jinja2.Environment(loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent),
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined).get_template("report.md.j2")


def versions():
    def first_line(script):
        lines = sh(script, check=False).strip().splitlines()
        return lines[0] if lines else "?"
    return {
        "controller": f"Python {platform.python_version()}, "
                      + run(["ansible", "--version"]).stdout.splitlines()[0],
        "docker": run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip(),
        "container OS": first_line(". /etc/os-release; echo $PRETTY_NAME"),
        "HAProxy": first_line("haproxy -v"),
        "MySQL server": first_line("mysqld --version 2>/dev/null || mariadbd --version"),
        "gunicorn / Flask / SQLAlchemy / PyMySQL": ", ".join(
            line for line in sh("/opt/flaskapp/venv/bin/pip freeze").splitlines()
            if line.split("==")[0].lower() in ("gunicorn", "flask", "sqlalchemy", "pymysql", "gevent")),
        "wrk": first_line("wrk -v 2>&1 || true"),
        "sysbench": first_line("sysbench --version"),
    }


def machine():
    meminfo = pathlib.Path("/proc/meminfo").read_text()
    cpu = re.search(r"model name\s*:\s*(.*)", pathlib.Path("/proc/cpuinfo").read_text())
    memory_gib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) / 1048576
    return {"cores": os.cpu_count(), "memory": f"{memory_gib:.1f} GiB",
            "cpu": cpu.group(1) if cpu else platform.machine(), "kernel": platform.release()}


def plot(http, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"haproxy": ("gunicorn → HAProxy → MySQL", "tab:blue"), "direct": ("gunicorn → MySQL", "tab:orange")}
    for mode, (label, colour) in styles.items():
        xs = sorted(http["wrk"][mode])
        axes.plot(xs, [http["wrk"][mode][c]["p50"] for c in xs], "o-", color=colour, label=f"{label}, p50")
        axes.plot(xs, [http["wrk"][mode][c]["p99"] for c in xs], "s--", color=colour, label=f"{label}, p99")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
    axes.set_xlabel("concurrent connections (wrk, both gunicorn instances)")
    axes.set_ylabel("latency of GET /todos (ms)")
    axes.set_title("Latency against concurrency, with and without HAProxy")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def provisioning_tables(provisioning, knobs):
    figures = provisioning["figures"]
    # The floor: facts plus as many no-op tasks run on the container.
    baseline = figures["baseline_round_trips"]["min"]
    provisioning_table = table(
        ["run", "min (s)", "median (s)", "x round-trip baseline (min)", "runs (s)"],
        [[name, f"{figures[key]['min']:.1f}", f"{figures[key]['median']:.1f}",
          f"{figures[key]['min'] / baseline:.1f}", ", ".join(f"{t:.1f}" for t in figures[key]["runs"])]
         for key, name in (("cold", "cold converge (fresh container)"),
                           ("warm", f"warm rerun (changed={provisioning['warm_changed']})"),
                           ("reconfigure", "HAProxy reconfigure (--tags haproxy, new maxconn)"),
                           ("baseline_round_trips", f"baseline: facts + {provisioning['tasks'] - 1} `ping` tasks"),
                           ("baseline", f"facts + {provisioning['tasks'] - 1} `debug` tasks (controller only)"))])
    roles_table = table(["role", "cold converge (s)", "warm rerun (s)"],
                        [[role, f"{provisioning['cold_roles'][role]:.1f}",
                          f"{provisioning['warm_roles'].get(role, 0):.1f}"] for role in provisioning["cold_roles"]])
    off = min(knobs["all knobs off"]["times"])
    knobs_table = table(["settings (warm rerun)", "min (s)", "median (s)", "vs all off (min)", "note"],
                        [[name, f"{min(k['times']):.1f}" if k["times"] else "-",
                          f"{statistics.median(k['times']):.1f}" if k["times"] else "-",
                          f"{(min(k['times']) - off):+.1f}s" if k["times"] else "-", k["note"]]
                         for name, k in knobs.items()])
    return {"provisioning_table": provisioning_table, "roles_table": roles_table, "knobs_table": knobs_table}


def http_tables(http):
    wrk = http["wrk"]
    http_table = table(
        ["concurrency", "req/s via HAProxy", "req/s direct", "p50 via / direct (ms)", "p50 added",
         "p99 via / direct (ms)", "errors"],
        [[c, f"{wrk['haproxy'][c]['rps']:.0f}", f"{wrk['direct'][c]['rps']:.0f}",
          f"{wrk['haproxy'][c]['p50']:.2f} / {wrk['direct'][c]['p50']:.2f}",
          f"{(wrk['haproxy'][c]['p50'] / wrk['direct'][c]['p50'] - 1) * 100:+.0f}%",
          f"{wrk['haproxy'][c]['p99']:.1f} / {wrk['direct'][c]['p99']:.1f}",
          int(wrk['haproxy'][c]['errors'] + wrk['direct'][c]['errors'])] for c in CONCURRENCY])
    pool_table = table(["app settings", "req/s at 8", "p99 at 8 (ms)", "req/s at 32", "p99 at 32 (ms)"],
                       [[size, f"{r[8]['rps']:.0f}", f"{r[8]['p99']:.1f}", f"{r[32]['rps']:.0f}",
                         f"{r[32]['p99']:.1f}"] for size, r in http["pool"].items()])
    memory_table = table(["process", "RSS (MiB)"], [[name, f"{mib:.1f}"] for name, mib in http["memory"].items()])
    return {"http_table": http_table, "pool_table": pool_table, "memory_table": memory_table}


def fair_ratio(sql, rows, threads):
    """Via HAProxy against the better of the two direct figures: this config's,
    or the untuned config's. A setting that slows MySQL down for everyone (a
    core spinning) cannot score by making direct worse."""
    untuned = sql["tunings"]["write-up config (untuned)"]
    return rows[threads]["haproxy"] / max(rows[threads]["direct"], untuned[threads]["direct"])


def sql_tables(sql):
    tuning_rows = []
    for name, rows in sql["tunings"].items():
        tuning_rows.append([name] + [f"{rows[t]['haproxy']:.0f} / {rows[t]['direct']:.0f} = **{rows[t]['ratio']:.2f}x**"
                                     for t in SYSBENCH_THREADS]
                           + [f"{fair_ratio(sql, rows, t):.2f}x" for t in (1, 8)]
                           + [f"{rows[t]['haproxy_cpu_ms_per_1000']:.1f}" for t in (1, 8)])
    sql_table = table(["HAProxy config"] + [f"{t} thread{'s' if t > 1 else ''}: q/s via / direct" for t in SYSBENCH_THREADS]
                      + ["via / best direct (1 thr)", "(8 thr)", "HAProxy CPU ms / 1,000 q (1 thr)", "(8 thr)"],
                      tuning_rows)
    connects_table = table(["client processes", "connects/s direct", "connects/s via HAProxy", "ratio"],
                           [[t, f"{r['direct']:.0f}", f"{r['haproxy']:.0f}", f"{r['haproxy'] / r['direct']:.2f}x"]
                            for t, r in sql["connects"].items()])
    return {"sql_table": sql_table, "connects_table": connects_table}


def targets_table(provisioning, http, sql):
    """Each target the benchmark was given, its figure, and whether it was met."""
    figures, wrk = provisioning["figures"], http["wrk"]
    baseline, warm = figures["baseline_round_trips"]["min"], figures["warm"]["min"]
    untuned = sql["tunings"]["write-up config (untuned)"]
    best = {t: max(sql["tunings"].items(), key=lambda item: fair_ratio(sql, item[1], t)) for t in (1, 8)}
    p50_added = wrk["haproxy"][8]["p50"] / wrk["direct"][8]["p50"] - 1
    return table(["target", "measured", "met"], [
        ["warm rerun within 3x the baseline (facts + as many `ping` tasks)",
         f"{warm / baseline:.1f}x ({warm:.1f}s / {baseline:.1f}s)",
         "yes" if warm <= 3 * baseline else "no"],
        ["warm rerun under 20 s", f"{warm:.1f}s", "yes" if warm < 20 else "no"],
        ["HAProxy adds at most 10% to p50 at concurrency 8", f"{p50_added * 100:+.0f}%",
         "yes" if p50_added <= 0.10 else "no"],
    ] + [[f"sysbench through HAProxy at least {goal:.2f}x direct at {t} thread{'s' if t > 1 else ''}",
          f"untuned {untuned[t]['ratio']:.2f}x; best {fair_ratio(sql, best[t][1], t):.2f}x ({best[t][0]})",
          "yes" if fair_ratio(sql, best[t][1], t) >= goal else "no"] for t, goal in ((1, 0.90), (8, 0.55))])


def int_keys(value):
    """JSON turned the int keys (concurrency, threads) into strings: undo that."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: int_keys(v) for k, v in value.items()}
    return value


def write_report(raw):
    """Write docs/benchmarks.md and .png from a run's figures, and print the report."""
    settings = raw["settings"]
    plot(raw["http"], DOCS / "benchmarks.png")
    text = TEMPLATE.render(
        when=raw["when"], host=raw["machine"], image=settings["image"], runs=settings["runs"],
        seconds=settings["seconds"], sql_repeats=SQL_REPEATS,
        versions_list="\n".join(f"- {name}: {value}" for name, value in raw["versions"].items()),
        targets_table=targets_table(raw["provisioning"], raw["http"], raw["sql"]),
        **provisioning_tables(raw["provisioning"], raw["knobs"]), **http_tables(raw["http"]), **sql_tables(raw["sql"]))
    (DOCS / "benchmarks.md").write_text(text)
    print(text)
