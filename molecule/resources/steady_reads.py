"""Run on a test host, in the background: GET /todos (or another path) over the
app's ports, one after another, about 20 a second per stream, until a stop file appears (or a
time limit passes). Then write one JSON object to the result file: how many
requests were made, the status of every one that did not answer 200, with
when its answer came (seconds since the start, and the Unix time, to set
beside a playbook run's task times), the five slowest requests, and every
request's start (Unix time) and duration.
Several streams at once keep more than one of an instance's pooled connections
busy, so requests keep needing new logins.

Standard library only (the target's Python, 3.8+).
Arguments: ports(comma-separated) stop_file result_file max_seconds [address [streams [path]]]
"""
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

ports, stop_file, result_file, max_seconds = sys.argv[1:5]
address = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
streams = int(sys.argv[6]) if len(sys.argv) > 6 else 1
path = sys.argv[7] if len(sys.argv) > 7 else "/todos"
ports = [int(port) for port in ports.split(",")]
started, counts, failures, durations = time.monotonic(), [], [], []


def stream(offset):
    count = 0
    while not os.path.exists(stop_file) and time.monotonic() - started < float(max_seconds):
        port = ports[(count + offset) % len(ports)]
        asked, asked_wall = time.monotonic(), time.time()
        try:
            with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = str(exc)
        durations.append({"wall": round(asked_wall, 2), "seconds": round(time.monotonic() - asked, 2), "port": port})
        if status != 200:
            failures.append({"at": round(time.monotonic() - started, 2), "wall": round(time.time(), 2),
                             "port": port, "status": status})
        count += 1
        time.sleep(0.05)
    counts.append(count)


threads = [threading.Thread(target=stream, args=(offset,)) for offset in range(streams)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with open(result_file + ".tmp", "w") as out:
    json.dump({"requests": sum(counts), "seconds": round(time.monotonic() - started, 1),
               "failures": sorted(failures, key=lambda failure: failure["at"]),
               "slowest": sorted(durations, key=lambda request: -request["seconds"])[:5],
               "timed": [[request["wall"], request["seconds"]] for request in durations]}, out)
os.rename(result_file + ".tmp", result_file)
