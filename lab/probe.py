"""The lab's instrument, run as root on a single-host stack (lab/playbook.yml):
fires GET /sleep/<s> at the app and samples, a few times a second, the app
account's sessions in MySQL and, over every HAProxy worker (the master CLI),
the server's sessions and the backend's queue. Prints one JSON object.

burst:   N concurrent requests at once, after any old HAProxy worker is gone.
sustain: N clients, each sending one request after another, until a reload
         has come and gone (its old worker exited) plus a few seconds.

Standard library only: it runs on the target's own Python (3.8 and later)."""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def cli(path, command, master=False):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        if master:
            # The master CLI waits for more commands unless told there are none.
            sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()


def parse_stat(text):
    lines = text.splitlines()
    header = lines[0].lstrip("# ").split(",")
    return {(row["pxname"], row["svname"]): row
            for row in (dict(zip(header, line.split(","))) for line in lines[1:] if "," in line)}


def workers(master):
    """PIDs of HAProxy's workers, current one first, from the master's `show proc`."""
    lines = cli(master, "show proc", master=True).splitlines()
    reloads = re.findall(r"<([^>]+)>", lines[0]).index("reloads")
    current, old, section = [], [], ""
    for line in lines[1:]:
        if line.startswith("#"):
            section = line.strip("# ")
            continue
        fields = re.sub(r"\[(\w+): *", r"[\1:", line).split()
        if len(fields) > reloads and fields[1] == "worker":
            (old if section == "old workers" or int(fields[reloads]) > 0 else current).append(int(fields[0]))
    return current + old, len(current)


class MySQL:
    """One root session over the socket, kept open: a query per sample costs no process."""

    def __init__(self):
        self.client = subprocess.Popen(["mysql", "-N", "-B", "-n"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, bufsize=1)

    def value(self, query):
        self.client.stdin.write(query + ";\n")
        self.client.stdin.flush()
        return self.client.stdout.readline().strip()

    def close(self):
        self.client.stdin.close()
        self.client.wait(10)


def discover():
    """What the probe needs of the deployed stack, read from the host: HAProxy's
    MySQL listener and its server, its sockets, and the app's ports."""
    with open("/etc/haproxy/haproxy.cfg") as config:
        text = config.read()
    listener = re.search(r"^listen (\S+)\n(?:(?!\S).*\n)*?\s+mode tcp\n(?:(?!\S).*\n)*?\s+server (\S+)",
                         text, re.MULTILINE)
    environment = subprocess.run(["systemctl", "show", "-p", "Environment", "--value", "haproxy"],
                                 capture_output=True, text=True, check=True).stdout
    units = subprocess.run(["systemctl", "list-units", "--no-legend", "--plain", "--state=active", "flaskapp@*.service"],
                           capture_output=True, text=True, check=True).stdout
    return {"proxy": listener.group(1), "server": listener.group(2),
            "stats_socket": re.search(r"^\s*stats socket (\S+)", text, re.MULTILINE).group(1),
            "master_socket": re.search(r"-S\s+([^\s,\"]+)", environment).group(1),
            "ports": sorted(int(port) for port in re.findall(r"flaskapp@(\d+)\.service", units))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["burst", "sustain"])
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--sleep", type=float, default=2)
    parser.add_argument("--db-user", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--linger", type=float, default=4, help="sustain: seconds after the old worker left")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--output", help="write the JSON here (complete when it appears), not to stdout")
    args = parser.parse_args()
    stack = discover()
    args.proxy, args.server = stack["proxy"], stack["server"]
    args.stats_socket, args.master_socket, ports = stack["stats_socket"], stack["master_socket"], stack["ports"]
    sessions_query = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{args.db_user}'"

    # An old worker still holds connections under the old limit: wait it out.
    deadline = time.monotonic() + args.max_seconds
    while len(workers(args.master_socket)[0]) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    cli(args.stats_socket, "clear counters")

    mysql = MySQL()
    haproxy_version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()
    versions = {"haproxy": f"HAProxy {haproxy_version[2]}",
                "mysql": mysql.value("SELECT CONCAT(IF(VERSION() LIKE '%MariaDB%', 'MariaDB ', 'MySQL '), VERSION())")}
    t0 = time.time()
    samples, requests = [], []
    stop_sampling, stop_requests = threading.Event(), threading.Event()
    first_workers = workers(args.master_socket)[0]
    events = {"reload_at": None, "old_gone_at": None}

    def sample():
        while not stop_sampling.is_set():
            # Rounded once: the reload's time must equal its sample's, which the
            # report counts as after the change (a sample rounded below it was not).
            at = round(time.time() - t0, 3)
            try:
                pids, current = workers(args.master_socket)
            except (OSError, ValueError, IndexError):
                pids = []
            if not pids:
                # The master re-executes itself on a reload (HAProxy 2.x): its CLI is
                # away for a moment. This sample is skipped, not the rest.
                time.sleep(args.interval)
                continue
            sessions = queued = answered = 0
            limit = None
            for index, pid in enumerate(pids):
                try:
                    rows = parse_stat(cli(args.master_socket, f"@!{pid} show stat", master=True))
                except (OSError, IndexError, KeyError):
                    continue  # a worker that exited meanwhile
                server, backend = rows.get((args.proxy, args.server)), rows.get((args.proxy, "BACKEND"))
                if server is None or backend is None:
                    continue  # an old worker that no longer answers (HAProxy 2.2)
                answered += 1
                sessions += int(server["scur"])
                queued += int(backend["qcur"])
                if index == 0:
                    limit = int(server["slim"])
            if events["reload_at"] is None and pids and pids[0] not in first_workers:
                events["reload_at"] = at
            if events["reload_at"] is not None and events["old_gone_at"] is None and len(pids) == current:
                events["old_gone_at"] = at
            samples.append({"t": at, "mysql_sessions": int(mysql.value(sessions_query)),
                            "haproxy_sessions": sessions, "haproxy_queue": queued, "limit": limit,
                            "workers": len(pids), "workers_answered": answered})
            time.sleep(args.interval)

    def get(index):
        url = f"http://127.0.0.1:{ports[index % len(ports)]}/sleep/{args.sleep:g}"
        start = time.time() - t0
        try:
            with urllib.request.urlopen(url, timeout=args.max_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        requests.append({"client": index, "start": round(start, 3), "end": round(time.time() - t0, 3),
                         "status": status})

    def client(index):
        while not stop_requests.is_set():
            get(index)

    sampler = threading.Thread(target=sample)
    sampler.start()
    time.sleep(3 * args.interval)  # a baseline before the first request
    if args.mode == "burst":
        threads = [threading.Thread(target=get, args=(index,)) for index in range(args.requests)]
    else:
        threads = [threading.Thread(target=client, args=(index,)) for index in range(args.requests)]
    for thread in threads:
        thread.start()
    if args.mode == "sustain":
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline and sampler.is_alive():
            gone = events["old_gone_at"]
            if gone is not None and time.time() - t0 > gone + args.linger:
                break
            time.sleep(0.2)
        stop_requests.set()
    for thread in threads:
        thread.join()
    time.sleep(3 * args.interval)  # and after the last
    stop_sampling.set()
    sampler.join()
    mysql.close()

    rows = parse_stat(cli(args.stats_socket, "show stat"))
    server, backend = rows[(args.proxy, args.server)], rows[(args.proxy, "BACKEND")]
    result = json.dumps({"mode": args.mode, "clients": args.requests, "sleep": args.sleep, "ports": ports,
               "proxy": f"{args.proxy}/{args.server}", "versions": versions,
               "started": t0, "samples": samples, "requests": sorted(requests, key=lambda r: r["start"]),
               "reload_at": events["reload_at"], "old_worker_gone_at": events["old_gone_at"],
               # HAProxy's own peaks since `clear counters` (burst), from its current worker.
               "haproxy_smax": int(server["smax"]), "haproxy_qmax": int(backend["qmax"]),
               "limit": int(server["slim"])})
    if args.output:
        with open(args.output + ".part", "w") as output:
            output.write(result)
        os.rename(args.output + ".part", args.output)
    else:
        sys.stdout.write(result)


if __name__ == "__main__":
    main()
