"""`make bench`: how fast playbooks/site.yml provisions, and what HAProxy costs
the stack, each figure measured in one run beside its baseline. Writes
docs/benchmarks.md and docs/benchmarks.png and prints the tables.

A benchmark, not a test: it records what it measured and never fails on noise.
It fails only when something it drives fails (a playbook run, a tool).

Environment: BENCH_IMAGE (default flaskstack/systemd:debian12), BENCH_RUNS
(repetitions of each provisioning figure, default 3), BENCH_SECONDS (length of
each load run, default 10), BENCH_DOCKER_FLAGS (systemd flags, set by make),
BENCH_KEEP=1 keeps the container afterwards.
"""
import datetime
import json
import os
import pathlib
import platform
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTAINER = "flaskstack-bench"
IMAGE = os.environ.get("BENCH_IMAGE", "flaskstack/systemd:debian12")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DOCKER_FLAGS = shlex.split(os.environ.get("BENCH_DOCKER_FLAGS", ""))
MITOGEN = "mitogen==0.3.54"
CONCURRENCY = (1, 8, 32, 64)
SYSBENCH_THREADS = (1, 8, 32)
SQL_REPEATS = 2
APP_PORTS = (8000, 8001)
# No remote user (the container's default, root, applies): given one, the docker
# connection runs `docker version` twice for every task to check it may pass it.
TARGET = ["-e", "ansible_connection=community.docker.docker", "-e", f"ansible_host={CONTAINER}",
          "-e", '{"ansible_user": null}']
WITH_REMOTE_USER = ["-e", "ansible_user=root"]
# The knob measurements start from all of them off, whatever ansible.cfg or the
# caller's shell says, and each variant sets its own.
KNOBS_OFF = {"ANSIBLE_PIPELINING": "false", "ANSIBLE_GATHERING": "implicit", "ANSIBLE_STRATEGY": "linear",
             "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.memory"}
# HAProxy settings tried against the write-up's config in the same run (sysbench).
HAPROXY_TUNINGS = {
    "write-up config (untuned)": {},
    "nbthread 1": {"haproxy_nbthread": 1},
    "nbthread 1, cpu-map to CPU 1": {"haproxy_nbthread": 1, "haproxy_cpu_map": "1/1 1"},
    "nbthread 2, a thread per CPU": {"haproxy_nbthread": 2, "haproxy_cpu_map": "1/1-2 0-1"},
    "tcp-smart-accept/connect": {"haproxy_listen_options": ["tcp-smart-accept", "tcp-smart-connect"]},
    # Polls instead of sleeping between events: less wake-up latency, a busy CPU.
    "busy-polling": {"haproxy_global_settings": ["busy-polling"]},
    "buffers: tune.bufsize 65536, tune.rcvbuf/sndbuf 262144": {"haproxy_global_settings": [
        "tune.bufsize 65536", "tune.rcvbuf.client 262144", "tune.rcvbuf.server 262144",
        "tune.sndbuf.client 262144", "tune.sndbuf.server 262144"]},
}
# Lets 32 sysbench threads and the app's pooled connections all connect: this
# section measures the proxy's cost, not its limits (those are in the tests).
SYSBENCH_LIMITS = {"haproxy_server_maxconn": 64}


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(command, env=None, check=True, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, **kwargs)
    if check and result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {shlex.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def sh(script, check=True):
    """A shell command inside the container."""
    return run(["docker", "exec", CONTAINER, "sh", "-c", script], check=check).stdout


def new_container():
    run(["docker", "rm", "-f", CONTAINER], check=False)
    run(["docker", "run", "-d", "--name", CONTAINER, "--hostname", "bench1", *DOCKER_FLAGS, IMAGE])
    for _ in range(50):
        state = run(["docker", "exec", CONTAINER, "systemctl", "is-system-running"], check=False).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.2)


def playbook(*args, env=None, playbook_path=ROOT / "playbooks" / "site.yml"):
    """Run a playbook on the container with the settings ansible.cfg ships:
    (wall seconds, recap counters, output)."""
    started = time.monotonic()
    result = run(["ansible-playbook", str(playbook_path), *TARGET, *args],
                 env={"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true",
                      "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles", **(env or {})},
                 cwd=ROOT)
    seconds = time.monotonic() - started
    match = re.search(r"^\S+\s+:\s+(ok=.*)$", result.stdout, re.MULTILINE)
    counters = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
    return seconds, counters, result.stdout


def extra_vars(values):
    return ["-e", json.dumps(values)] if values else []


def role_times(output):
    """profile_roles' summary: {role: seconds}."""
    summary = output.split("=" * 20)[-1]
    return {name: float(seconds) for name, seconds in
            re.findall(r"^\s*(\S+) -+ (\d+\.\d+)s\s*$", summary, re.MULTILINE) if name != "total"}


def min_median(values):
    return {"min": min(values), "median": statistics.median(values), "runs": values}


# --- Provisioning --------------------------------------------------------------------

def measure_provisioning():
    results = {"cold": [], "warm": [], "reconfigure": [], "baseline": [], "baseline_round_trips": []}
    cold_roles = []
    for attempt in range(RUNS):
        new_container()
        log(f"cold converge {attempt + 1}/{RUNS}")
        seconds, counters, output = playbook()
        results["cold"].append(seconds)
        cold_roles.append(role_times(output))
    warm_counters, warm_roles = None, []
    for attempt in range(RUNS):
        seconds, warm_counters, output = playbook()
        log(f"warm rerun {attempt + 1}/{RUNS}: {seconds:.1f}s, changed={warm_counters['changed']}")
        results["warm"].append(seconds)
        warm_roles.append(role_times(output))
    for attempt, maxconn in enumerate([11, 10, 11][:RUNS] + [10] * max(0, RUNS - 3)):
        seconds, counters, _ = playbook("--tags", "haproxy", "-e", f"haproxy_server_maxconn={maxconn}")
        log(f"haproxy reconfigure {attempt + 1}/{RUNS} (maxconn {maxconn}): {seconds:.1f}s")
        results["reconfigure"].append(seconds)
    playbook("--tags", "haproxy")  # back to the defaults

    # The floor: gather facts, then as many tasks as the warm rerun ran. Two
    # kinds of no-op: `debug`, which Ansible runs on the controller (its fixed
    # cost per task), and `ping`, a round trip to the container that does nothing.
    tasks = warm_counters["ok"] + warm_counters["skipped"]
    with tempfile.TemporaryDirectory() as tmp:
        for key, module in (("baseline", "ansible.builtin.debug"), ("baseline_round_trips", "ansible.builtin.ping")):
            baseline = pathlib.Path(tmp, f"{key}.yml")
            baseline.write_text(json.dumps([{
                "name": "Baseline", "hosts": "all", "gather_facts": True,
                "tasks": [{"name": f"No-op {n}", module: {}} for n in range(tasks - 1)]}]))
            for _ in range(RUNS):
                seconds, _, _ = playbook(playbook_path=baseline)
                results[key].append(seconds)
            log(f"{key} ({tasks} tasks, {module}): {min(results[key]):.1f}s")
    return {"figures": {key: min_median(values) for key, values in results.items()},
            "warm_changed": warm_counters["changed"], "tasks": tasks,
            "cold_roles": {role: statistics.median(r.get(role, 0) for r in cold_roles) for role in cold_roles[0]},
            "warm_roles": {role: statistics.median(r.get(role, 0) for r in warm_roles) for role in warm_roles[0]}}


def mitogen_env():
    """Mitogen, installed beside the venv for the benchmark only: its strategy
    plugin, or None if it cannot be installed."""
    target = ROOT / ".venv" / "bench-mitogen"
    if not target.exists():
        result = run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), MITOGEN], check=False)
        if result.returncode != 0:
            return None
    plugins = target / "ansible_mitogen" / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear",
            "PYTHONPATH": str(target)}


def measure_knobs():
    """Warm reruns under each speed knob, against all of them off."""
    cache = tempfile.mkdtemp(prefix="flaskstack-facts-")
    kept = {"ANSIBLE_PIPELINING": "true", "ANSIBLE_GATHERING": "smart"}
    variants = {
        "all knobs off": {},
        "pipelining": {"ANSIBLE_PIPELINING": "true"},
        "gathering = smart": {"ANSIBLE_GATHERING": "smart"},
        "gathering = smart + jsonfile fact cache": {
            "ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache, "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "600"},
        "strategy = free": {"ANSIBLE_STRATEGY": "free"},
        "no remote user (docker connection)": {},
        "pipelining + gathering = smart": kept,
        "pipelining + gathering = smart + no remote user (as shipped)": kept,
    }
    # "all knobs off" passes a remote user, as an inventory written for SSH does.
    arguments = {name: [] if "no remote user" in name else WITH_REMOTE_USER for name in variants}
    mitogen = mitogen_env()
    if mitogen:
        name = "Mitogen (mitogen_linear) + pipelining + smart"
        variants[name] = {**mitogen, **kept}
        # Mitogen swaps in its own transport only for the short name "docker".
        arguments[name] = ["-e", "ansible_connection=docker"]
    results = {}
    for name, env in variants.items():
        times, note = [], ""
        for _ in range(RUNS):
            started = time.monotonic()
            result = run(["ansible-playbook", str(ROOT / "playbooks" / "site.yml"), *TARGET,
                          *arguments.get(name, [])],
                         env={"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true", **KNOBS_OFF, **env},
                         cwd=ROOT, check=False)
            if result.returncode != 0:
                lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
                note = f"failed: {lines[-1][:200] if lines else result.returncode}"
                break
            times.append(time.monotonic() - started)
            changed = re.search(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)
            if not changed or changed.group(1) != "0":
                note = "warm rerun reported changes"
        results[name] = {"times": times, "note": note}
        log(f"knob {name}: {min(times):.1f}s" if times else f"knob {name}: {note}")
    if not mitogen:
        results["Mitogen"] = {"times": [], "note": f"pip could not install {MITOGEN}"}
    return results


# --- The provisioned stack -----------------------------------------------------------

WRK_REPORT = r"""
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, "p50": %f, "p99": %f}\n',
    summary.requests, summary.duration / 1e6, errors.connect + errors.read + errors.write + errors.timeout,
    errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk(concurrency, path="/todos"):
    """wrk at this many connections on the app, split over both instances (one
    instance at concurrency 1). Returns req/s and p50/p99 in ms; percentiles of
    the two processes are averaged, weighted by their requests."""
    ports = APP_PORTS if concurrency > 1 else APP_PORTS[:1]
    per_port = concurrency // len(ports)
    runs = " & ".join(f"wrk -t1 -c{per_port} -d{SECONDS}s -s /tmp/report.lua http://127.0.0.1:{port}{path}"
                      f" > /tmp/wrk-{port}.out" for port in ports)
    sh(f"{runs}; wait")
    parts = [json.loads(sh(f"tail -1 /tmp/wrk-{port}.out")) for port in ports]
    total = sum(part["requests"] for part in parts)
    return {"rps": sum(part["requests"] / part["seconds"] for part in parts),
            "p50": sum(part["p50"] * part["requests"] for part in parts) / total,
            "p99": sum(part["p99"] * part["requests"] for part in parts) / total,
            "errors": sum(part["errors"] + part["non2xx"] for part in parts)}


def point_app_at(port, pool_size=1, tls="disabled"):
    """Rerun the app's role with this MySQL port, pool size and TLS mode (the
    single-host default is "disabled")."""
    playbook("--tags", "flaskapp", "-e", f"flaskapp_db_port={port}", "-e", f"flaskapp_db_pool_size={pool_size}",
             "-e", f"flaskapp_db_tls={tls}")
    for app_port in APP_PORTS:
        sh(f"curl -sf http://127.0.0.1:{app_port}/todos > /dev/null")


def measure_http():
    results = {"haproxy": {}, "direct": {}}
    for round_number in range(2):
        for mode, port in (("haproxy", 5555), ("direct", 3306)):
            point_app_at(port)
            for concurrency in CONCURRENCY:
                results[mode].setdefault(concurrency, []).append(wrk(concurrency))
                log(f"wrk round {round_number + 1} {mode} c={concurrency}: "
                    f"{results[mode][concurrency][-1]['rps']:.0f} req/s")
    memory = measure_memory()
    # What the app's own settings do to the same stack: the pool size, and TLS
    # left at the driver's default (a TLS context for every new connection).
    pool = {}
    for name, pool_size, tls in (("pool size 1 (as provisioned)", 1, "disabled"),
                                 ("pool size 1, flaskapp_db_tls=preferred", 1, "preferred"),
                                 ("pool size 5", 5, "disabled")):
        point_app_at(5555, pool_size, tls)
        pool[name] = {concurrency: wrk(concurrency) for concurrency in (8, 32)}
        log(f"{name}: {pool[name][8]['rps']:.0f} req/s at c=8")
    point_app_at(5555)
    merged = {mode: {c: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                     for c, runs in by_concurrency.items()} for mode, by_concurrency in results.items()}
    return {"wrk": merged, "pool": pool, "memory": memory}


def measure_memory():
    """RSS in MiB: each gunicorn instance (master and workers), HAProxy, mysqld."""
    def rss_kib(pids):
        return sum(int(sh(f"ps -o rss= -p {pid}").strip() or 0) for pid in pids)
    memory = {}
    for port in APP_PORTS:
        main = sh(f"systemctl show -p MainPID --value flaskapp@{port}").strip()
        children = sh(f"pgrep -P {main} || true").split()
        memory[f"gunicorn flaskapp@{port}"] = rss_kib([main, *children]) / 1024
    memory["haproxy (all processes)"] = rss_kib(sh("pgrep -x haproxy").split()) / 1024
    memory["mysqld"] = rss_kib(sh("pgrep -x 'mariadbd|mysqld'").split()) / 1024
    return memory


def haproxy_cpu_ticks():
    ticks = 0
    for pid in sh("pgrep -x haproxy").split():
        fields = sh(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def sysbench(port, threads, password):
    command = (f"sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port={port} "
               f"--mysql-user=sbtest --mysql-password={password} --mysql-db=sbtest --tables=1 --table-size=10000 "
               f"--threads={threads} --time={SECONDS} --report-interval=0 run")
    before = haproxy_cpu_ticks()
    out = sh(command)
    ticks = haproxy_cpu_ticks() - before
    queries = int(re.search(r"queries:\s+(\d+)", out).group(1))
    qps = float(re.search(r"queries:\s+\d+\s+\((\d+\.\d+) per sec", out).group(1))
    hertz = int(sh("getconf CLK_TCK"))
    return {"qps": qps, "haproxy_cpu_ms_per_1000": ticks / hertz * 1000 / (queries / 1000)}


# A client that opens a connection per query, with the app's own driver: connect,
# SELECT 1, close, for some seconds, in several processes. Prints connects/s.
# PyMySQL 1.2 builds a TLS context for every connection (TLS "preferred"), which
# costs more than the connection itself here: "plain" turns that off to show
# what the network path costs.
CONNECT_LOOP = r"""
import multiprocessing, os, sys, time
import pymysql
port, seconds, processes, plain = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "plain"
options = {"ssl_disabled": True} if plain else {}
def loop(_):
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = pymysql.connect(host="127.0.0.1", port=port, user="sbtest", password=os.environ["BENCH_PW"],
                                     **options)
        connection.cursor().execute("SELECT 1")
        connection.close()
        count += 1
    return count
with multiprocessing.Pool(processes) as pool:
    print(sum(pool.map(loop, range(processes))) / seconds)
"""


def connects_per_second(port, processes, password, mode="plain"):
    # The password reaches the client in its environment, not on its command line.
    return float(run(["docker", "exec", "-e", f"BENCH_PW={password}", CONTAINER, "/opt/flaskapp/venv/bin/python",
                      "-c", CONNECT_LOOP, str(port), str(SECONDS), str(processes), mode]).stdout)


def measure_sql():
    # A throwaway account and table for sysbench, made over MySQL's root socket;
    # the container is removed afterwards.
    password = secrets.token_hex(12)
    sh("mysql -e \"CREATE DATABASE IF NOT EXISTS sbtest; "
       f"CREATE USER IF NOT EXISTS 'sbtest'@'127.0.0.1' IDENTIFIED BY '{password}'; "
       f"ALTER USER 'sbtest'@'127.0.0.1' IDENTIFIED BY '{password}'; "
       "GRANT ALL ON sbtest.* TO 'sbtest'@'127.0.0.1'\"")
    sh(f"sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 "
       f"--mysql-user=sbtest --mysql-password={password} --mysql-db=sbtest --tables=1 --table-size=10000 "
       "cleanup > /dev/null; "
       f"sysbench oltp_point_select --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=3306 "
       f"--mysql-user=sbtest --mysql-password={password} --mysql-db=sbtest --tables=1 --table-size=10000 "
       "prepare > /dev/null")
    tunings = {}
    for name, settings in HAPROXY_TUNINGS.items():
        playbook("--tags", "haproxy", *extra_vars({**SYSBENCH_LIMITS, **settings}))
        rows = {}
        for threads in SYSBENCH_THREADS:
            # Alternating, so both sides see the same drift in the machine's load.
            direct, proxied = [], []
            for _ in range(SQL_REPEATS):
                direct.append(sysbench(3306, threads, password))
                proxied.append(sysbench(5555, threads, password))
            direct_qps = statistics.mean(r["qps"] for r in direct)
            proxied_qps = statistics.mean(r["qps"] for r in proxied)
            rows[threads] = {"direct": direct_qps, "haproxy": proxied_qps, "ratio": proxied_qps / direct_qps,
                             "haproxy_cpu_ms_per_1000": statistics.mean(r["haproxy_cpu_ms_per_1000"] for r in proxied)}
            log(f"sysbench {name}, {threads} threads: {rows[threads]['ratio']:.2f}x direct")
        tunings[name] = rows
    playbook("--tags", "haproxy", *extra_vars(SYSBENCH_LIMITS))
    # A connection per query: what a client without a pool pays, and HAProxy adds.
    connects = {}
    for processes in (1, 8):
        connects[processes] = {mode: connects_per_second(port, processes, password)
                               for mode, port in (("direct", 3306), ("haproxy", 5555))}
        log(f"connects/s with {processes} clients: {connects[processes]}")
    connects["1, PyMySQL defaults (TLS context per connection)"] = {
        mode: connects_per_second(port, 1, password, "defaults") for mode, port in (("direct", 3306), ("haproxy", 5555))}
    playbook("--tags", "haproxy")
    return {"tunings": tunings, "connects": connects}


# --- Report ----------------------------------------------------------------------------

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


def report(when, host, tools, provisioning, knobs, http, sql):
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
    untuned = sql["tunings"]["write-up config (untuned)"]

    def fair_ratio(rows, threads):
        """Via HAProxy against the better of the two direct figures: this
        config's, or the untuned config's. A setting that slows MySQL down for
        everyone (a core spinning) cannot score by making direct worse."""
        return rows[threads]["haproxy"] / max(rows[threads]["direct"], untuned[threads]["direct"])

    tuning_rows = []
    for name, rows in sql["tunings"].items():
        tuning_rows.append([name] + [f"{rows[t]['haproxy']:.0f} / {rows[t]['direct']:.0f} = **{rows[t]['ratio']:.2f}x**"
                                     for t in SYSBENCH_THREADS]
                           + [f"{fair_ratio(rows, t):.2f}x" for t in (1, 8)]
                           + [f"{rows[t]['haproxy_cpu_ms_per_1000']:.1f}" for t in (1, 8)])
    sql_table = table(["HAProxy config"] + [f"{t} thread{'s' if t > 1 else ''}: q/s via / direct" for t in SYSBENCH_THREADS]
                      + ["via / best direct (1 thr)", "(8 thr)", "HAProxy CPU ms / 1,000 q (1 thr)", "(8 thr)"],
                      tuning_rows)
    connects_table = table(["client processes", "connects/s direct", "connects/s via HAProxy", "ratio"],
                           [[t, f"{r['direct']:.0f}", f"{r['haproxy']:.0f}", f"{r['haproxy'] / r['direct']:.2f}x"]
                            for t, r in sql["connects"].items()])
    memory_table = table(["process", "RSS (MiB)"], [[name, f"{mib:.1f}"] for name, mib in http["memory"].items()])
    warm = figures["warm"]["min"]
    best = {t: max(sql["tunings"].items(), key=lambda item: fair_ratio(item[1], t)) for t in (1, 8)}
    p50_added = wrk["haproxy"][8]["p50"] / wrk["direct"][8]["p50"] - 1
    targets_table = table(["target", "measured", "met"], [
        ["warm rerun within 3x the baseline (facts + as many `ping` tasks)",
         f"{warm / baseline:.1f}x ({warm:.1f}s / {baseline:.1f}s)",
         "yes" if warm <= 3 * baseline else "no"],
        ["warm rerun under 20 s", f"{warm:.1f}s", "yes" if warm < 20 else "no"],
        ["HAProxy adds at most 10% to p50 at concurrency 8", f"{p50_added * 100:+.0f}%",
         "yes" if p50_added <= 0.10 else "no"],
    ] + [[f"sysbench through HAProxy at least {goal:.2f}x direct at {t} thread{'s' if t > 1 else ''}",
          f"untuned {untuned[t]['ratio']:.2f}x; best {fair_ratio(best[t][1], t):.2f}x ({best[t][0]})",
          "yes" if fair_ratio(best[t][1], t) >= goal else "no"] for t, goal in ((1, 0.90), (8, 0.55))])
    versions_list = "\n".join(f"- {name}: {value}" for name, value in tools.items())
    return f"""# Benchmarks

Measured by `make bench` on {when} on this project's development machine: {host['cores']} cores
({host['cpu']}), {host['memory']} of memory, kernel {host['kernel']}. Everything ran on one
host: the controller, Docker, and one systemd container ({IMAGE}) holding MySQL, HAProxy and
both gunicorn instances, plus the load tools. It is a benchmark, not a test: figures move with
the machine's other load; each run of `make bench` rewrites this file.

{versions_list}

## Targets

{targets_table}

## Provisioning

Wall time of `ansible-playbook playbooks/site.yml` on the container (connection
`community.docker.docker`, no SSH), {RUNS} runs each, with the settings `ansible.cfg` ships
(knobs below). Each cold converge starts from a new container.

{provisioning_table}

Time per role (median, `profile_roles`):

{roles_table}

### Speed knobs

Warm reruns, {RUNS} each, every knob set explicitly through the environment.

{knobs_table}

## The stack: HTTP through gunicorn

`wrk` on `GET /todos` for {SECONDS}s per run, two rounds (median shown), the connections split
over both gunicorn instances (one instance at concurrency 1; percentiles of the two wrk
processes averaged, weighted by requests). "Via HAProxy" is the stack as provisioned; "direct"
is the same app rerun with `flaskapp_db_port=3306`. Pool size 1 (the write-up's), TLS to MySQL
disabled (the default when everything is on one host).

{http_table}

![Latency against concurrency](benchmarks.png)

The app's own settings, via HAProxy, same run: its pool size (`flaskapp_db_pool_size`), and
TLS to MySQL left at the driver's default (`flaskapp_db_tls=preferred`: PyMySQL 1.2 then builds a
TLS context for every new connection, even though this MariaDB offers no TLS):

{pool_table}

Memory after the wrk runs:

{memory_table}

## SQL through HAProxy: sysbench

`sysbench oltp_point_select` (one table of 10,000 rows) for {SECONDS}s per run, straight to
3306 and through 5555, alternating, {SQL_REPEATS} runs each (mean shown), with HAProxy's server `maxconn` raised to 64 so 32 threads
all connect (this measures the proxy's cost, not its limits). Each HAProxy setting is applied
by a rerun of the playbook and measured against direct in the same run. HAProxy's CPU time is
its processes' user+system time over the run. "via / best direct" divides by the better of this
config's direct figure and the untuned config's, so a setting that slows MySQL itself down
(`busy-polling` keeps a core spinning, which the 2 cores here cannot spare) cannot look better
by making direct worse; the targets use it.

{sql_table}

A new connection per query, what a client without a pool pays: PyMySQL (the app's driver)
connecting as the sysbench account, running `SELECT 1` and closing, in a loop, for {SECONDS}s,
with `ssl_disabled=True` unless the row says otherwise (PyMySQL 1.2 otherwise builds a TLS
context, loading the CA store, for every connection):

{connects_table}
"""


def int_keys(value):
    """JSON turned the int keys (concurrency, threads) into strings: undo that."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: int_keys(v) for k, v in value.items()}
    return value


def write_report(raw):
    plot(raw["http"], DOCS / "benchmarks.png")
    text = report(raw["when"], raw["machine"], raw["versions"], raw["provisioning"], raw["knobs"], raw["http"],
                  raw["sql"])
    (DOCS / "benchmarks.md").write_text(text)
    print(text)


def main():
    if sys.argv[1:] == ["--report-only"]:
        # Rewrite the report and plot from the last run's figures, measuring nothing.
        global IMAGE, RUNS, SECONDS
        raw = int_keys(json.loads((DOCS / "benchmarks.json").read_text()))
        settings = raw.get("settings", {})
        IMAGE, RUNS, SECONDS = (settings.get("image", IMAGE), settings.get("runs", RUNS),
                                settings.get("seconds", SECONDS))
        write_report(raw)
        return
    if not DOCKER_FLAGS:
        sys.exit("run it with `make bench` (BENCH_DOCKER_FLAGS unset)")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    log(f"{host['cores']} cores, {host['memory']}; image {IMAGE}; {RUNS} runs; {SECONDS}s load runs")
    provisioning = measure_provisioning()
    knobs = measure_knobs()
    log("installing wrk, sysbench and curl in the container (Debian packages)")
    sh("apt-get install -y -q wrk sysbench curl > /dev/null 2>&1 || "
       "(apt-get update -q > /dev/null && apt-get install -y -q wrk sysbench curl > /dev/null)")
    sh(f"cat > /tmp/report.lua <<'EOF'\n{WRK_REPORT}\nEOF")
    tools = versions()
    http = measure_http()
    sql = measure_sql()
    DOCS.mkdir(exist_ok=True)
    raw = {"when": when, "settings": {"image": IMAGE, "runs": RUNS, "seconds": SECONDS}, "machine": host,
           "versions": tools, "provisioning": provisioning, "knobs": knobs, "http": http, "sql": sql}
    (DOCS / "benchmarks.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    write_report(raw)
    if os.environ.get("BENCH_KEEP") != "1":
        run(["docker", "rm", "-f", CONTAINER], check=False)


if __name__ == "__main__":
    main()
