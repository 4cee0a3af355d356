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

CHROOT = "/var/lib/haproxy"

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
    # Through HAProxy's unix socket row, MySQL sees the account at localhost.
    statements = ["CREATE DATABASE IF NOT EXISTS sbtest"]
    for host in ("127.0.0.1", "localhost"):
        statements += [f"CREATE USER IF NOT EXISTS 'sbtest'@'{host}' IDENTIFIED BY '{password}'",
                       f"ALTER USER 'sbtest'@'{host}' IDENTIFIED BY '{password}'",
                       f"GRANT ALL ON sbtest.* TO 'sbtest'@'{host}'"]
    sh("mysql", stdin="; ".join(statements) + ";\n")
    sh(f"umask 077; cat > {SYSBENCH_CONFIG}", stdin=f"mysql-password={password}\n")
    sh(f"{sysbench_command(MYSQL_PORT, 'cleanup')} > /dev/null; {sysbench_command(MYSQL_PORT, 'prepare')} > /dev/null")
    return password


def mysqld_pid():
    return sh("pgrep -o -x 'mariadbd|mysqld'").strip()


# systemd gives HAProxy a mount namespace of its own (Debian's unit bind-mounts
# /dev/log into the chroot), so MySQL's socket directory is bound in the same way.
SOCKET_DROP_IN = "/etc/systemd/system/haproxy.service.d/bench-mysql-socket.conf"


def apply_tuning(tuning):
    """Rerun the haproxy role with a tuning's variables, after what it needs on
    the host: MySQL pinned to some CPUs, or MySQL's socket directory bound into
    HAProxy's chroot (and the listener's one server pointed at the socket)."""
    variables = {**SYSBENCH_LIMITS, **tuning.get("vars", {})}
    if "mysql_cpus" in tuning:
        sh(f"taskset -a -p -c {tuning['mysql_cpus']} {mysqld_pid()} > /dev/null")
    if "unix_socket" in tuning:
        directory = tuning["unix_socket"].rsplit("/", 1)[0]
        sh(f"mkdir -p {CHROOT}{directory} {SOCKET_DROP_IN.rsplit('/', 1)[0]} && "
           f"printf '[Service]\\nBindPaths={directory}:{CHROOT}{directory}\\n' > {SOCKET_DROP_IN} && "
           "systemctl daemon-reload && systemctl restart haproxy")
        variables["haproxy_backend_servers"] = [{"name": "mysql1", "host": "stack1", "address": tuning["unix_socket"],
                                                 "check_address": "127.0.0.1"}]
    playbook("--tags", "haproxy", *extra_vars(variables))


def undo_tuning(tuning):
    """Back to the untuned config (the next tuning's rerun replaces the rest)."""
    if "mysql_cpus" in tuning:
        sh(f"taskset -a -p -c 0-$(( $(nproc --all) - 1 )) {mysqld_pid()} > /dev/null")
    if "unix_socket" in tuning:
        # HAProxy off the socket before its directory leaves the chroot.
        playbook("--tags", "haproxy", *extra_vars(SYSBENCH_LIMITS))
        sh(f"rm {SOCKET_DROP_IN} && systemctl daemon-reload && systemctl restart haproxy")


def measure_sql():
    password = create_sysbench_account()
    tunings = {}
    for name, tuning in HAPROXY_TUNINGS.items():
        apply_tuning(tuning)
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
        undo_tuning(tuning)
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
