"""What `make bench` measures and with what: one place for its settings.

Environment: BENCH_IMAGE (default flaskstack/systemd:debian12), BENCH_RUNS
(repetitions of each provisioning figure, default 3), BENCH_SECONDS (length of
each load run, default 10), BENCH_DOCKER_FLAGS (systemd flags, set by make),
BENCH_KEEP=1 keeps the container afterwards.
"""
import os
import pathlib
import shlex

import yaml

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
# The stack's shared values, as the playbook sets them.
_SHARED = yaml.safe_load((ROOT / "playbooks" / "group_vars" / "all" / "main.yml").read_text())
APP_PORTS = tuple(_SHARED["flaskstack_app_ports"])
MYSQL_PORT = _SHARED["flaskstack_mysql_port"]
PROXY_PORT = _SHARED["flaskstack_proxy_port"]
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
