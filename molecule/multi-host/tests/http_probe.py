"""Run on a test host: GET a URL again and again for some seconds and print, as
JSON, one [seconds since start, HTTP status, served-by header] per request.
Status 0 means no HTTP answer at all.

Standard library only: it runs on the target's Python (3.8+).
Arguments: url seconds interval header
"""
import json
import sys
import time
import urllib.error
import urllib.request

url, seconds, interval, header = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
started = time.monotonic()
results = []
while time.monotonic() - started < seconds:
    sent = time.monotonic() - started
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            results.append([round(sent, 2), response.status, response.headers.get(header)])
    except urllib.error.HTTPError as error:
        results.append([round(sent, 2), error.code, error.headers.get(header)])
    except OSError:
        results.append([round(sent, 2), 0, None])
    time.sleep(interval)
print(json.dumps(results))
