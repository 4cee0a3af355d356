"""Run on a test host: fire concurrent GET /sleep/<s> requests spread over the
app's ports while sampling, every 0.1 s, how many SELECT SLEEP queries MySQL runs
for the app user, the server's sessions and the backend's queue in HAProxy. Prints one JSON object.

Standard library only: it runs on the target's Python (3.8+), with
haproxy_stat.py beside it (flaskstack_testlib.run_script).
Arguments: requests seconds ports(comma-separated) db_user stats_socket proxy/server
"""
import concurrent.futures
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from haproxy_stat import parse_show_stat

requests, seconds, ports, db_user, stats_socket, server = sys.argv[1:7]
requests, ports = int(requests), [int(port) for port in ports.split(",")]
proxy_name, server_name = server.split("/")
COUNT_SLEEPS = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                f"WHERE USER = '{db_user}' AND INFO LIKE 'SELECT SLEEP%'")


def haproxy(command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(stats_socket)
        sock.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()


def stats(svname):
    return parse_show_stat(haproxy("show stat"))[(proxy_name, svname)]


def get(index):
    url = f"http://127.0.0.1:{ports[index % len(ports)]}/sleep/{seconds}"
    try:
        with urllib.request.urlopen(url, timeout=180) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


samples = []
done = threading.Event()


def sample():
    while not done.is_set():
        sleeps = subprocess.run(["mysql", "-N", "-B", "-e", COUNT_SLEEPS],
                                capture_output=True, text=True, check=True).stdout
        row = stats(server_name)
        samples.append({"mysql_sleeps": int(sleeps), "haproxy_current": int(row["scur"]),
                        "haproxy_queued": int(stats("BACKEND")["qcur"])})
        time.sleep(0.1)


haproxy("clear counters")
sampler = threading.Thread(target=sample)
sampler.start()
started = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(requests) as pool:
    statuses = list(pool.map(get, range(requests)))
elapsed = time.monotonic() - started
done.set()
sampler.join()
server_row, backend_row = stats(server_name), stats("BACKEND")
print(json.dumps({
    "statuses": statuses,
    "elapsed": elapsed,
    "max_mysql_sleeps": max(s["mysql_sleeps"] for s in samples),
    "max_haproxy_current_sampled": max(s["haproxy_current"] for s in samples),
    "max_haproxy_queued_sampled": max(s["haproxy_queued"] for s in samples),
    "haproxy_smax": int(server_row["smax"]),
    "haproxy_slim": int(server_row["slim"]),
    # Without persistence, connections wait in the backend's queue, not a server's.
    "haproxy_qmax": int(backend_row["qmax"]),
    "samples": len(samples),
}))
