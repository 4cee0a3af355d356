"""Provisioning over SSH, as users reach a VM: a host reached at a published
port as a sudo user (`deploy`, key only, `become` for the work), the way the
Oracle MySQL scenario reaches its host. Cold converge, warm rerun and a HAProxy
reconfigure, against facts plus as many `ping` tasks over the same connection
as the warm rerun ran modules on the host (counted in the host's own sudo log:
every module run with become is one sudo command), with pipelining and
ControlPersist on, as shipped; the warm rerun and that floor with Mitogen too."""
import json
import pathlib
import subprocess
import tempfile
import time

from driver import log, min_median, recap, run
from provisioning import mitogen_env
from settings import DOCKER_FLAGS, ROOT, RUNS, SSH_CONTAINER, SSH_IMAGE, SSH_PORT


def ssh_flags():
    """The systemd flags make passes, with the cgroup namespace of the image's
    own cgroup2 tree (Debian unstable's systemd refuses cgroup v1) instead of
    the host's."""
    flags, skip = [], False
    for flag in DOCKER_FLAGS:
        if skip:
            skip = False
        elif flag == "-v":
            skip = True  # the host's cgroup tree
        elif flag != "--cgroupns" and flag != "host":
            flags.append(flag)
    return [*flags, "--cgroupns", "private"]


class SshHost:
    """A fresh container with sshd, reached the way a VM is."""

    def __init__(self, keys):
        self.key = keys / "id_ed25519"
        subprocess.run(["bash", str(ROOT / "molecule" / "resources" / "ssh-key.sh"), str(keys)],
                       check=True, capture_output=True)
        run(["docker", "rm", "-f", SSH_CONTAINER], check=False)
        run(["docker", "run", "-d", "--name", SSH_CONTAINER, "--hostname", "benchssh", *ssh_flags(),
             "-p", f"127.0.0.1:{SSH_PORT}:22", "-v", f"{keys}/id_ed25519.pub:/etc/ssh/authorized_keys/deploy:ro",
             SSH_IMAGE, "/usr/local/sbin/cgroup2-init"])
        self.ssh_args = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                         f"-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={keys}/cm-%C")
        # sshd makes its host keys at first boot: wait for a login.
        for _ in range(120):
            if run(["ssh", "-p", str(SSH_PORT), "-i", str(self.key), *self.ssh_args.split(), "deploy@127.0.0.1",
                    "sudo -n true"], check=False).returncode == 0:
                break
            time.sleep(0.5)
        # What a user's inventory for a VM says (README, "Run it against a VM"),
        # and this host's flavour: Debian unstable's mysql-server is Oracle MySQL.
        self.target = ["-e", json.dumps({
            "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": SSH_PORT,
            "ansible_user": "deploy", "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": self.ssh_args, "mysql_flavor": "mysql"})]

    def playbook(self, *args, env=None, playbook_path=ROOT / "playbooks" / "site.yml"):
        started = time.monotonic()
        result = run(["ansible-playbook", str(playbook_path), *self.target, *args],
                     env={"ANSIBLE_FORCE_COLOR": "false", "ANSIBLE_NOCOLOR": "true", **(env or {})}, cwd=ROOT)
        return time.monotonic() - started, recap(result.stdout)

    def sudo_commands(self):
        """How many commands sudo has run on the host: with pipelining, one per
        module run with become (facts included)."""
        log_lines = run(["docker", "exec", SSH_CONTAINER, "journalctl", "-q", "SYSLOG_IDENTIFIER=sudo", "-o", "cat"]).stdout
        return sum("COMMAND=" in line for line in log_lines.splitlines())

    def newest_haproxy_worker_start(self):
        """Epoch seconds HAProxy's youngest worker started: a reload starts new
        workers under the same master (the container shares the host's clock)."""
        script = """
import os, subprocess, time
btime = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
master = int(subprocess.check_output(["systemctl", "show", "-p", "MainPID", "--value", "haproxy"]))
starts = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue  # gone meanwhile
    if int(fields[1]) == master:
        starts.append(btime + int(fields[19]) / os.sysconf("SC_CLK_TCK"))
print(max(starts))
"""
        return float(run(["docker", "exec", SSH_CONTAINER, "python3", "-c", script]).stdout)

    def counted_playbook(self, *args, **kwargs):
        """playbook(), and how many modules it ran on the host with become."""
        before = self.sudo_commands()
        seconds, counters = self.playbook(*args, **kwargs)
        return seconds, counters, self.sudo_commands() - before


def baseline_playbook(directory, tasks, module="ansible.builtin.ping"):
    """Facts, then tasks - 1 no-op tasks, with become as the site's plays:
    `ping`, the floor for that many module runs on the host; `debug`, which
    runs on the controller, Ansible's own cost for that many tasks."""
    path = pathlib.Path(directory, f"ssh-baseline-{module}.yml")
    path.write_text(json.dumps([{"name": "Baseline", "hosts": "all", "gather_facts": True, "become": True,
                                 "tasks": [{"name": f"No-op {n}", module: {}} for n in range(tasks - 1)]}]))
    return path


def measure_ssh_provisioning():
    with tempfile.TemporaryDirectory(prefix="flaskstack-bench-ssh-") as directory:
        host = SshHost(pathlib.Path(directory))
        log(f"SSH: cold converge of {SSH_IMAGE} as a sudo user")
        cold, _ = host.playbook()
        results = {"warm": [], "reconfigure": [], "reconfigure_to_reload": [], "baseline_round_trips": [],
                   "baseline_controller": [], "mitogen_warm": [], "mitogen_baseline_round_trips": []}
        counters, module_runs = {}, 0
        for attempt in range(RUNS):
            seconds, counters, module_runs = host.counted_playbook()
            results["warm"].append(seconds)
            log(f"SSH warm rerun {attempt + 1}/{RUNS}: {seconds:.1f}s, changed={counters['changed']}, "
                f"{module_runs} modules run on the host")
        for attempt, maxconn in enumerate([11, 10, 11][:RUNS] + [10] * max(0, RUNS - 3)):
            command_started = time.time()
            seconds, _ = host.playbook("--tags", "haproxy", "-e", f"haproxy_server_maxconn={maxconn}")
            results["reconfigure"].append(seconds)
            # From the command to the new worker, which runs the new limit (the run
            # goes on to have the apps reconnect through it).
            results["reconfigure_to_reload"].append(host.newest_haproxy_worker_start() - command_started)
            log(f"SSH haproxy reconfigure {attempt + 1}/{RUNS}: {seconds:.1f}s, "
                f"{results['reconfigure_to_reload'][-1]:.1f}s to the reload")
        host.playbook("--tags", "haproxy")  # back to the defaults
        # The ping floor makes as many module runs as the warm rerun (skipped
        # and controller-side tasks make none; a template or copy makes two);
        # the debug play has as many tasks, for Ansible's own cost.
        tasks = counters["ok"] + counters["skipped"]
        baseline = baseline_playbook(directory, module_runs)
        controller_only = baseline_playbook(directory, tasks, "ansible.builtin.debug")
        mitogen = mitogen_env()
        baseline_module_runs = 0
        for _ in range(RUNS):
            seconds, _, baseline_module_runs = host.counted_playbook(playbook_path=baseline)
            results["baseline_round_trips"].append(seconds)
            results["baseline_controller"].append(host.playbook(playbook_path=controller_only)[0])
            if mitogen:
                seconds, mitogen_counters = host.playbook(env=mitogen)
                results["mitogen_warm"].append(seconds)
                results["mitogen_baseline_round_trips"].append(host.playbook(playbook_path=baseline, env=mitogen)[0])
        log(f"SSH baseline ({baseline_module_runs} module runs): {min(results['baseline_round_trips']):.1f}s; "
            f"Mitogen warm {min(results['mitogen_warm'] or [0]):.1f}s")
    run(["docker", "rm", "-f", SSH_CONTAINER], check=False)
    figures = {key: min_median(values) for key, values in results.items() if values}
    figures["cold"] = min_median([cold])
    return {"image": SSH_IMAGE, "figures": figures, "tasks": tasks, "warm_changed": counters["changed"],
            "module_runs": module_runs, "baseline_module_runs": baseline_module_runs,
            "mitogen_changed": mitogen_counters["changed"] if mitogen else None}
