"""Run on a test host, in the background: GET /todos over the app's ports, one
after another, about 20 a second, until a stop file appears (or a time limit
passes). Then write one JSON object to the result file: how many requests were
made and the status of every one that did not answer 200.

Standard library only (the target's Python, 3.8+).
Arguments: ports(comma-separated) stop_file result_file max_seconds [address]
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

ports, stop_file, result_file, max_seconds = sys.argv[1:5]
address = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
ports = [int(port) for port in ports.split(",")]
started, count, failures = time.monotonic(), 0, []
while not os.path.exists(stop_file) and time.monotonic() - started < float(max_seconds):
    port = ports[count % len(ports)]
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/todos", timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        status = str(exc)
    if status != 200:
        failures.append({"at": round(time.monotonic() - started, 2), "port": port, "status": status})
    count += 1
    time.sleep(0.05)
with open(result_file + ".tmp", "w") as out:
    json.dump({"requests": count, "seconds": round(time.monotonic() - started, 1), "failures": failures}, out)
os.rename(result_file + ".tmp", result_file)
