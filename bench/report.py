"""The report: docs/benchmarks.md (rendered from report.md.j2), the latency
plot and the tables, from the figures a run measured (docs/benchmarks.json)."""
import os
import pathlib
import platform
import re
import statistics

import jinja2

from driver import run, sh
from settings import CONCURRENCY, DOCS, RECOMMENDED_ROUNDS, SQL_REPEATS, SYSBENCH_THREADS

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


def ssh_table(ssh):
    figures = ssh["figures"]
    baseline = figures["baseline_round_trips"]["min"]
    names = (("cold", "cold converge (fresh host)"),
             ("warm", f"warm rerun (changed={ssh['warm_changed']})"),
             ("reconfigure", "HAProxy reconfigure (--tags haproxy, new maxconn)"),
             ("reconfigure_to_reload", "the same reconfigure, from the command to HAProxy's new worker"),
             # The SSH floor, sized by the warm rerun's module runs on the host (its sudo log counts them).
             ("baseline_round_trips", f"baseline: facts + {ssh['module_runs'] - 1} `ping` tasks, become "
                                      f"({ssh['baseline_module_runs']} module runs on the host; "
                                      f"the warm rerun's: {ssh['module_runs']})"),
             ("baseline_controller", f"facts + {ssh['tasks'] - 1} `debug` tasks (controller only)"),
             ("mitogen_warm", f"Mitogen: warm rerun (changed={ssh['mitogen_changed']})"),
             ("mitogen_baseline_round_trips", "Mitogen: the same baseline"))
    return table(["run (SSH as a sudo user)", "min (s)", "median (s)", "x baseline (min)", "runs (s)"],
                 [[name, f"{figures[key]['min']:.1f}", f"{figures[key]['median']:.1f}",
                   f"{figures[key]['min'] / baseline:.1f}", ", ".join(f"{t:.1f}" for t in figures[key]["runs"])]
                  for key, name in names if key in figures])


def per_request(run):
    """MySQL's counts per request: statements (Questions) and new connections."""
    counts = run["per_request"]
    return f"{counts['Questions']:.2f} / {counts['Connections']:.2f}"


def http_tables(http):
    wrk = http["wrk"]
    http_table = table(
        ["concurrency", "req/s via HAProxy", "req/s direct", "p50 via / direct (ms)", "p50 added",
         "p99 via / direct (ms)", "MySQL statements / connections per request (via)", "errors"],
        [[c, f"{wrk['haproxy'][c]['rps']:.0f}", f"{wrk['direct'][c]['rps']:.0f}",
          f"{wrk['haproxy'][c]['p50']:.2f} / {wrk['direct'][c]['p50']:.2f}",
          f"{(wrk['haproxy'][c]['p50'] / wrk['direct'][c]['p50'] - 1) * 100:+.0f}%",
          f"{wrk['haproxy'][c]['p99']:.1f} / {wrk['direct'][c]['p99']:.1f}", per_request(wrk["haproxy"][c]),
          int(wrk['haproxy'][c]['errors'] + wrk['direct'][c]['errors'])] for c in CONCURRENCY])
    recommended = http["recommended"]["wrk"]
    recommended_table = table(
        ["concurrency", "req/s via / direct", "ratio", "p50 via / direct (ms)", "ratio", "p99 via / direct (ms)",
         "MySQL statements / connections per request (via)", "errors"],
        [[c, f"{recommended['haproxy'][c]['rps']:.0f} / {recommended['direct'][c]['rps']:.0f}",
          f"**{recommended['haproxy'][c]['rps'] / recommended['direct'][c]['rps']:.2f}x**",
          f"{recommended['haproxy'][c]['p50']:.2f} / {recommended['direct'][c]['p50']:.2f}",
          f"**{recommended['haproxy'][c]['p50'] / recommended['direct'][c]['p50']:.2f}x**",
          f"{recommended['haproxy'][c]['p99']:.1f} / {recommended['direct'][c]['p99']:.1f}",
          per_request(recommended["haproxy"][c]),
          int(recommended['haproxy'][c]['errors'] + recommended['direct'][c]['errors'])]
         for c in sorted(recommended["haproxy"])])
    rounds = http["recommended"]["rounds"]

    def ratios(c, figure):
        return ", ".join(f"{one_round[figure]:.2f}x" for one_round in rounds[c])
    recommended_table += "\n\nEach round's via / direct: " + "; ".join(
        f"c={c}: req/s {ratios(c, 'rps')}, p50 {ratios(c, 'p50')}" for c in sorted(rounds)) + "."
    pool_table = table(["app settings", "req/s at 8", "p99 at 8 (ms)", "req/s at 32", "p99 at 32 (ms)"],
                       [[size, f"{r[8]['rps']:.0f}", f"{r[8]['p99']:.1f}", f"{r[32]['rps']:.0f}",
                         f"{r[32]['p99']:.1f}"] for size, r in http["pool"].items()])
    memory_table = table(["process", "RSS (MiB)"], [[name, f"{mib:.1f}"] for name, mib in http["memory"].items()])
    return {"http_table": http_table, "recommended_table": recommended_table, "pool_table": pool_table,
            "memory_table": memory_table,
            "recommended_settings": ", ".join(f"`{name}: {value}`"
                                              for name, value in http["recommended"]["settings"].items())}


def fair_ratio(sql, rows, threads):
    """Via HAProxy against the better of the two direct figures: this config's,
    or the untuned config's. A setting that slows MySQL down for everyone (a
    core spinning) cannot score by making direct worse."""
    untuned = sql["tunings"]["write-up config (untuned)"]
    return rows[threads]["haproxy"] / max(rows[threads]["direct"], untuned[threads]["direct"])


def wins_everywhere(sql, rows):
    """Better than the untuned config at every thread count, judged against the best direct figure."""
    untuned = sql["tunings"]["write-up config (untuned)"]
    return all(fair_ratio(sql, rows, t) > fair_ratio(sql, untuned, t) for t in SYSBENCH_THREADS)


def sql_tables(sql):
    tuning_rows = []
    for name, rows in sql["tunings"].items():
        tuning_rows.append([name] + [f"{rows[t]['haproxy']:.0f} / {rows[t]['direct']:.0f} = **{rows[t]['ratio']:.2f}x**"
                                     for t in SYSBENCH_THREADS]
                           + [f"{fair_ratio(sql, rows, t):.2f}x" for t in SYSBENCH_THREADS]
                           + ["-" if name == "write-up config (untuned)" else
                              ("yes" if wins_everywhere(sql, rows) else "no")]
                           + [f"{rows[t]['haproxy_cpu_ms_per_1000']:.1f}" for t in (1, 8)])
    sql_table = table(["HAProxy config"] + [f"{t} thread{'s' if t > 1 else ''}: q/s via / direct" for t in SYSBENCH_THREADS]
                      + [f"via / best direct ({t} thr)" for t in SYSBENCH_THREADS]
                      + ["wins at every thread count", "HAProxy CPU ms / 1,000 q (1 thr)", "(8 thr)"],
                      tuning_rows)
    connects_table = table(["client processes", "connects/s direct", "connects/s via HAProxy", "ratio"],
                           [[t, f"{r['direct']:.0f}", f"{r['haproxy']:.0f}", f"{r['haproxy'] / r['direct']:.2f}x"]
                            for t, r in sql["connects"].items()])
    return {"sql_table": sql_table, "connects_table": connects_table}


def targets_table(provisioning, ssh, http, sql):
    """Each target the benchmark was given, its figure, and whether it was met."""
    figures, wrk = provisioning["figures"], http["wrk"]
    baseline, warm = figures["baseline_round_trips"]["min"], figures["warm"]["min"]
    ssh_warm = ssh["figures"]["warm"]["min"]
    to_reload = ssh["figures"]["reconfigure_to_reload"]["min"]
    mitogen = ssh["figures"].get("mitogen_warm")
    controller = ssh["figures"].get("baseline_controller")
    untuned = sql["tunings"]["write-up config (untuned)"]
    best = {t: max(sql["tunings"].items(), key=lambda item: fair_ratio(sql, item[1], t)) for t in (1, 8)}
    p50_added = wrk["haproxy"][8]["p50"] / wrk["direct"][8]["p50"] - 1
    recommended = http["recommended"]["wrk"]
    rows = [
        ["warm rerun within 3x the baseline (facts + as many `ping` tasks)",
         f"{warm / baseline:.1f}x ({warm:.1f}s / {baseline:.1f}s)",
         "yes" if warm <= 3 * baseline else "no"],
        ["warm rerun over SSH as a sudo user at most 20 s (as shipped)",
         f"{ssh_warm:.1f}s (its floor, facts + pings for its {ssh['module_runs']} module runs: "
         f"{ssh['figures']['baseline_round_trips']['min']:.1f}s"
         + (f"; Ansible alone, {ssh['tasks']} tasks on the controller, {controller['min']:.1f}s" if controller else "")
         + (f"; with Mitogen {mitogen['min']:.1f}s" if mitogen else "") + ")",
         "yes" if ssh_warm <= 20 else "no"],
        ["a new HAProxy limit over SSH as a sudo user (--tags haproxy): at most 5 s from the command to the reload",
         f"{to_reload:.1f}s ({ssh['figures']['reconfigure']['min']:.1f}s for the whole run, which then has the apps "
         "reconnect through the new worker)", "yes" if to_reload <= 5 else "no"],
        ["one MySQL statement per `/todos` (recommended settings, via HAProxy, c=8)",
         f"{recommended['haproxy'][8]['per_request']['Questions']:.2f} statements, "
         f"{recommended['haproxy'][8]['per_request']['Connections']:.3f} connections per request",
         "yes" if recommended["haproxy"][8]["per_request"]["Questions"] < 1.05 else "no"],
    ]
    for c in sorted(recommended["haproxy"]):
        via, direct = recommended["haproxy"][c], recommended["direct"][c]
        rows.append([f"recommended settings, c={c}: via HAProxy at least 0.90x direct's req/s",
                     f"{via['rps'] / direct['rps']:.2f}x ({via['rps']:.0f} / {direct['rps']:.0f})",
                     "yes" if via["rps"] >= 0.90 * direct["rps"] else "no"])
        rows.append([f"recommended settings, c={c}: p50 via HAProxy at most 1.15x direct's",
                     f"{via['p50'] / direct['p50']:.2f}x ({via['p50']:.2f} / {direct['p50']:.2f} ms)",
                     "yes" if via["p50"] <= 1.15 * direct["p50"] else "no"])
    rows.append(["write-up settings (pool 1): HAProxy adds at most 10% to p50 at concurrency 8",
                 f"{p50_added * 100:+.0f}%", "yes" if p50_added <= 0.10 else "no"])
    rows += [[f"sysbench through HAProxy at least {goal:.2f}x direct at {t} thread{'s' if t > 1 else ''}",
              f"untuned {untuned[t]['ratio']:.2f}x; best {fair_ratio(sql, best[t][1], t):.2f}x ({best[t][0]})",
              "yes" if fair_ratio(sql, best[t][1], t) >= goal else "no"] for t, goal in ((1, 0.90), (8, 0.55))]
    return table(["target", "measured", "met"], rows)


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
        knob_runs=settings.get("knob_runs", settings["runs"]), seconds=settings["seconds"], sql_repeats=SQL_REPEATS,
        ssh_image=raw["ssh"]["image"], ssh_table=ssh_table(raw["ssh"]), recommended_rounds=RECOMMENDED_ROUNDS,
        versions_list="\n".join(f"- {name}: {value}" for name, value in raw["versions"].items()),
        targets_table=targets_table(raw["provisioning"], raw["ssh"], raw["http"], raw["sql"]),
        **provisioning_tables(raw["provisioning"], raw["knobs"]), **http_tables(raw["http"]), **sql_tables(raw["sql"]))
    (DOCS / "benchmarks.md").write_text(text)
    print(text)
