"""What `make bench` measures and with what: one place for its settings.

Environment: BENCH_IMAGE (default flaskstack/systemd:debian12), BENCH_RUNS
(repetitions of each provisioning figure, default 3), BENCH_KNOB_RUNS (of each
speed knob, default 2), BENCH_SECONDS (length of each load run, default 10),
BENCH_SSH_IMAGE (the host reached over SSH, default flaskstack/systemd:sid-ssh),
BENCH_SSH_PORT (its published SSH port, default 2298), BENCH_DOCKER_FLAGS
(systemd flags, set by make), BENCH_KEEP=1 keeps the stack's container afterwards.
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
KNOB_RUNS = int(os.environ.get("BENCH_KNOB_RUNS", "2"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
DOCKER_FLAGS = shlex.split(os.environ.get("BENCH_DOCKER_FLAGS", ""))
SSH_CONTAINER = "flaskstack-bench-ssh"
SSH_IMAGE = os.environ.get("BENCH_SSH_IMAGE", "flaskstack/systemd:sid-ssh")
SSH_PORT = int(os.environ.get("BENCH_SSH_PORT", "2298"))
MITOGEN = "mitogen==0.3.54"
CONCURRENCY = (1, 8, 32, 64)
SYSBENCH_THREADS = (1, 8, 32)
SQL_REPEATS = 2
# The stack's shared values, as the playbook sets them.
_SHARED = yaml.safe_load((ROOT / "roles" / "shared" / "defaults" / "main.yml").read_text())
APP_PORTS = tuple(_SHARED["flaskstack_app_ports"])
MYSQL_PORT = _SHARED["flaskstack_mysql_port"]
PROXY_PORT = _SHARED["flaskstack_proxy_port"]
_DEFAULTS = {role: yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
             for role in ("haproxy", "flaskapp")}
SERVER_MAXCONN = _DEFAULTS["haproxy"]["haproxy_server_maxconn"]
# The app's recommended settings, from the README's sizing rule: the server's
# maxconn shared by the pools of every instance's workers (10 / (2 x 1) = 5),
# and no overflow, so no request pays for a new connection and the pools never
# ask HAProxy for more than the server's slots.
RECOMMENDED_APP = {
    "flaskapp_db_pool_size": SERVER_MAXCONN // (len(APP_PORTS) * _DEFAULTS["flaskapp"]["flaskapp_workers"]),
    "flaskapp_db_max_overflow": 0}
RECOMMENDED_CONCURRENCY = (8, 32)
RECOMMENDED_ROUNDS = 3
# No remote user (the container's default, root, applies): given one, the docker
# connection runs `docker version` twice for every task to check it may pass it.
TARGET = ["-e", "ansible_connection=community.docker.docker", "-e", f"ansible_host={CONTAINER}",
          "-e", '{"ansible_user": null}']
WITH_REMOTE_USER = ["-e", "ansible_user=root"]
# The knob measurements start from all of them off, whatever ansible.cfg or the
# caller's shell says, and each variant sets its own.
KNOBS_OFF = {"ANSIBLE_PIPELINING": "false", "ANSIBLE_GATHERING": "implicit", "ANSIBLE_STRATEGY": "linear",
             "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.memory"}
# HAProxy settings tried against the write-up's config in the same run
# (sysbench): the role's variables for each, and what the benchmark does on
# the host around it. The earlier report's losers (a thread per CPU,
# tcp-smart-accept/connect, busy-polling, larger buffers) are not measured again.
HAPROXY_TUNINGS = {
    "write-up config (untuned)": {},
    "nbthread 1": {"vars": {"haproxy_nbthread": 1}},
    # MySQL's threads pinned to the other core (taskset), so neither waits for the other.
    "nbthread 1 on CPU 1, MySQL on CPU 0": {"vars": {"haproxy_nbthread": 1, "haproxy_cpu_map": "1/1 1"},
                                           "mysql_cpus": "0"},
    # splice(2) moves bytes between the sockets in the kernel when it pays.
    "option splice-auto": {"vars": {"haproxy_listen_options": ["splice-auto"]}},
    # Idle server connections shared between threads (HTTP reuse only: TCP mode has none).
    "tune.idle-pool.shared off": {"vars": {"haproxy_global_settings": ["tune.idle-pool.shared off"]}},
    # HAProxy to MySQL over its unix socket, bind-mounted into HAProxy's chroot.
    "unix socket to MySQL": {"unix_socket": "/run/mysqld/mysqld.sock"},
}
# Lets 32 sysbench threads and the app's pooled connections all connect: this
# section measures the proxy's cost, not its limits (those are in the tests).
SYSBENCH_LIMITS = {"haproxy_server_maxconn": 64}
