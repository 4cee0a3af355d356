"""Run on a test host: open many TCP connections to host:port, send nothing on
them for some seconds, and print as JSON how many connected and how many the
other end had closed by then. Standard library only (the target's Python 3.8+).
Arguments: host port count seconds
"""
import json
import resource
import select
import socket
import sys
import time

host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 64)), hard))
held = []
for _ in range(count):
    try:
        held.append(socket.create_connection((host, port), timeout=5))
    except OSError:
        break
time.sleep(seconds)
# A closed one is readable (end of file) or hung up (a reset); an open, idle one is neither.
poller = select.poll()
for sock in held:
    poller.register(sock, select.POLLIN)
print(json.dumps({"connected": len(held), "closed": len(poller.poll(0))}))
