"""The provisioned stack under HTTP load: wrk on /todos through gunicorn, via
HAProxy and straight to MySQL, the app's pool and TLS settings, and memory."""
import json
import statistics

from driver import extra_vars, log, playbook, sh
from settings import (APP_PORTS, CONCURRENCY, MYSQL_PORT, PROXY_PORT, RECOMMENDED_APP, RECOMMENDED_CONCURRENCY,
                      RECOMMENDED_ROUNDS, SECONDS)

# MySQL's own counters of what clients sent it: statements (Questions, which
# counts COM_PING and the rest too, and Com_* per kind) and new connections.
MYSQL_COUNTERS = ("Questions", "Com_select", "Com_admin_commands", "Com_rollback", "Connections")

WRK_REPORT = r"""
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, "p50": %f, "p99": %f}\n',
    summary.requests, summary.duration / 1e6, errors.connect + errors.read + errors.write + errors.timeout,
    errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def mysql_counters():
    out = sh("mysql -N -B -e \"SHOW GLOBAL STATUS WHERE Variable_name IN (%s)\""
             % ", ".join(f"'{name}'" for name in MYSQL_COUNTERS))
    return {name: int(value) for name, value in (line.split("\t") for line in out.splitlines())}


def wrk(concurrency, path="/todos"):
    """wrk at this many connections on the app, split over both instances (one
    instance at concurrency 1). Returns req/s and p50/p99 in ms (percentiles of
    the two processes averaged, weighted by their requests), and what MySQL
    counted per request meanwhile (statements, new connections)."""
    ports = APP_PORTS if concurrency > 1 else APP_PORTS[:1]
    per_port = concurrency // len(ports)
    runs = " & ".join(f"wrk -t1 -c{per_port} -d{SECONDS}s -s /tmp/report.lua http://127.0.0.1:{port}{path}"
                      f" > /tmp/wrk-{port}.out" for port in ports)
    before = mysql_counters()
    sh(f"{runs}; wait")
    after = mysql_counters()
    parts = [json.loads(sh(f"tail -1 /tmp/wrk-{port}.out")) for port in ports]
    total = sum(part["requests"] for part in parts)
    return {"rps": sum(part["requests"] / part["seconds"] for part in parts),
            "p50": sum(part["p50"] * part["requests"] for part in parts) / total,
            "p99": sum(part["p99"] * part["requests"] for part in parts) / total,
            "errors": sum(part["errors"] + part["non2xx"] for part in parts),
            # The reading's own statement and login are noise against thousands of requests.
            "per_request": {name: (after[name] - before[name]) / total for name in MYSQL_COUNTERS}}


def point_app_at(port, pool_size=1, tls="disabled", **settings):
    """Rerun the app's role with this MySQL port, pool size and TLS mode (the
    single-host default is "disabled"), and any other app settings."""
    playbook("--tags", "flaskapp", *extra_vars({"flaskapp_db_port": port, "flaskapp_db_pool_size": pool_size,
                                                "flaskapp_db_tls": tls, **settings}))
    for app_port in APP_PORTS:
        sh(f"curl -sf http://127.0.0.1:{app_port}/todos > /dev/null")


def measure_recommended():
    """The app's recommended settings, via HAProxy against direct, rounds
    alternating so both see the same drift in the machine's load: medians."""
    runs = {"haproxy": {c: [] for c in RECOMMENDED_CONCURRENCY}, "direct": {c: [] for c in RECOMMENDED_CONCURRENCY}}
    settings = dict(RECOMMENDED_APP)
    pool_size = settings.pop("flaskapp_db_pool_size")
    for round_number in range(RECOMMENDED_ROUNDS):
        for mode, port in (("haproxy", PROXY_PORT), ("direct", MYSQL_PORT)):
            point_app_at(port, pool_size, **settings)
            for concurrency in RECOMMENDED_CONCURRENCY:
                runs[mode][concurrency].append(wrk(concurrency))
                log(f"recommended settings, round {round_number + 1}, {mode} c={concurrency}: "
                    f"{runs[mode][concurrency][-1]['rps']:.0f} req/s")
    # Each round's via/direct ratios, so the report shows the spread behind the medians.
    rounds = {c: [{figure: via[figure] / direct[figure] for figure in ("rps", "p50")}
                  for via, direct in zip(runs["haproxy"][c], runs["direct"][c])] for c in RECOMMENDED_CONCURRENCY}
    return {"settings": RECOMMENDED_APP, "rounds": rounds,
            "wrk": {mode: {c: median_run(r) for c, r in by_c.items()} for mode, by_c in runs.items()}}


def median_run(runs):
    """Each figure's median over the runs (per-request counters included)."""
    merged = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "per_request"}
    merged["per_request"] = {name: statistics.median(r["per_request"][name] for r in runs)
                             for name in runs[0]["per_request"]}
    return merged


def measure_http():
    results = {"haproxy": {}, "direct": {}}
    for round_number in range(2):
        for mode, port in (("haproxy", PROXY_PORT), ("direct", MYSQL_PORT)):
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
        point_app_at(PROXY_PORT, pool_size, tls)
        pool[name] = {concurrency: wrk(concurrency) for concurrency in (8, 32)}
        log(f"{name}: {pool[name][8]['rps']:.0f} req/s at c=8")
    recommended = measure_recommended()
    point_app_at(PROXY_PORT)
    merged = {mode: {c: median_run(runs) for c, runs in by_concurrency.items()}
              for mode, by_concurrency in results.items()}
    return {"wrk": merged, "pool": pool, "memory": memory, "recommended": recommended}


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
