"""SQL through HAProxy against straight to MySQL: sysbench oltp_point_select
under each HAProxy tuning, and the price of a new connection per query.

The throwaway sysbench account's password reaches MySQL, sysbench and the
connect loop on their standard input, in a root-only file or in the
environment: never on a command line (of the controller or the container)."""
import re
import secrets
import statistics

from driver import extra_vars, log, playbook, run, sh
from settings import (CONTAINER, HAPROXY_TUNINGS, MYSQL_PORT, PROXY_PORT, SECONDS, SQL_REPEATS, SYSBENCH_LIMITS,
                      SYSBENCH_THREADS)

# sysbench reads its options from this file too (--config-file): the password's place.
SYSBENCH_CONFIG = "/root/.flaskstack-sysbench.conf"


def haproxy_cpu_ticks():
    ticks = 0
    for pid in sh("pgrep -x haproxy").split():
        fields = sh(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def sysbench_command(port, action, threads=1):
    """The one sysbench command line: oltp_point_select on one table of 10,000
    rows, as the sysbench account, at this port; the password comes from
    SYSBENCH_CONFIG."""
    return (f"sysbench oltp_point_select --config-file={SYSBENCH_CONFIG} --db-driver=mysql "
            f"--mysql-host=127.0.0.1 --mysql-port={port} --mysql-user=sbtest --mysql-db=sbtest "
            f"--tables=1 --table-size=10000 --threads={threads} --time={SECONDS} --report-interval=0 {action}")


def sysbench(port, threads):
    before = haproxy_cpu_ticks()
    out = sh(sysbench_command(port, "run", threads))
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
    # `-e BENCH_PW` without a value: docker takes it from its own environment.
    return float(run(["docker", "exec", "-e", "BENCH_PW", CONTAINER, "/opt/flaskapp/venv/bin/python",
                      "-c", CONNECT_LOOP, str(port), str(SECONDS), str(processes), mode],
                     env={"BENCH_PW": password}).stdout)


def create_sysbench_account():
    """A throwaway account and table for sysbench, made over MySQL's root socket
    (the container is removed afterwards). Returns its password."""
    password = secrets.token_hex(12)
    sh("mysql", stdin=("CREATE DATABASE IF NOT EXISTS sbtest; "
                       f"CREATE USER IF NOT EXISTS 'sbtest'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                       f"ALTER USER 'sbtest'@'127.0.0.1' IDENTIFIED BY '{password}'; "
                       "GRANT ALL ON sbtest.* TO 'sbtest'@'127.0.0.1';\n"))
    sh(f"umask 077; cat > {SYSBENCH_CONFIG}", stdin=f"mysql-password={password}\n")
    sh(f"{sysbench_command(MYSQL_PORT, 'cleanup')} > /dev/null; {sysbench_command(MYSQL_PORT, 'prepare')} > /dev/null")
    return password


def measure_sql():
    password = create_sysbench_account()
    tunings = {}
    for name, settings in HAPROXY_TUNINGS.items():
        playbook("--tags", "haproxy", *extra_vars({**SYSBENCH_LIMITS, **settings}))
        rows = {}
        for threads in SYSBENCH_THREADS:
            # Alternating, so both sides see the same drift in the machine's load.
            direct, proxied = [], []
            for _ in range(SQL_REPEATS):
                direct.append(sysbench(MYSQL_PORT, threads))
                proxied.append(sysbench(PROXY_PORT, threads))
            direct_qps = statistics.mean(r["qps"] for r in direct)
            proxied_qps = statistics.mean(r["qps"] for r in proxied)
            rows[threads] = {"direct": direct_qps, "haproxy": proxied_qps, "ratio": proxied_qps / direct_qps,
                             "haproxy_cpu_ms_per_1000": statistics.mean(r["haproxy_cpu_ms_per_1000"] for r in proxied)}
            log(f"sysbench {name}, {threads} threads: {rows[threads]['ratio']:.2f}x direct")
        tunings[name] = rows
    playbook("--tags", "haproxy", *extra_vars(SYSBENCH_LIMITS))
    # A connection per query: what a client without a pool pays, and HAProxy adds.
    connects = {}
    both = (("direct", MYSQL_PORT), ("haproxy", PROXY_PORT))
    for processes in (1, 8):
        connects[processes] = {mode: connects_per_second(port, processes, password) for mode, port in both}
        log(f"connects/s with {processes} clients: {connects[processes]}")
    connects["1, PyMySQL defaults (TLS context per connection)"] = {
        mode: connects_per_second(port, 1, password, "defaults") for mode, port in both}
    playbook("--tags", "haproxy")
    return {"tunings": tunings, "connects": connects}
