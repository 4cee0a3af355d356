"""Run on an app host with the app's Python (PyMySQL): insert numbered rows
through HAProxy's MySQL listener for some seconds, one per transaction, and
print as JSON which ones MySQL acknowledged (COMMIT returned) and when, and
when writes failed. A failed write reconnects and tries the next number, so a
row either was acknowledged (and must be found later on every member) or the
client saw its failure.

Arguments: host port user table seconds ca_file; the password in WRITER_PASSWORD.
"""
import json
import os
import sys
import time

import pymysql

host, port, user, table, seconds, ca_file = sys.argv[1:7]
started = time.monotonic()
acked, failed, number, connection = [], [], 0, None
while time.monotonic() - started < float(seconds):
    number += 1
    now = time.monotonic() - started
    try:
        if connection is None:
            connection = pymysql.connect(host=host, port=int(port), user=user, password=os.environ["WRITER_PASSWORD"],
                                         ssl_ca=ca_file, ssl_verify_identity=True,
                                         connect_timeout=2, read_timeout=5, write_timeout=5, autocommit=False)
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} (id) VALUES (%s)", (number,))
        connection.commit()
        acked.append([number, round(now, 3)])
    except (pymysql.err.MySQLError, OSError) as error:
        failed.append([number, round(now, 3), str(error)[:120]])
        try:
            connection.close()
        except Exception:  # noqa: BLE001 (already broken)
            pass
        connection = None
        time.sleep(0.05)
print(json.dumps({"acked": acked, "failed": failed}))
