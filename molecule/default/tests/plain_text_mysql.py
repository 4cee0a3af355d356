"""A machine on the path to MySQL, as an attacker could run one: it greets in
MySQL's protocol without offering TLS and, if the client logs in anyway, asks
for the password in clear text (an auth switch to mysql_clear_password).

Serves one client on 127.0.0.1:PORT and prints, as JSON, every byte the
client sent (hex), for the test to look for the user name and the password:
the script never holds them. Arguments: port, seconds to wait for the client.
"""
import json
import socket
import struct
import sys

port, wait_seconds = int(sys.argv[1]), float(sys.argv[2])
# LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH: no SSL (0x800).
CAPABILITIES = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000
SCRAMBLE = b"0123456789abcdefghij"


def packet(sequence, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


GREETING = packet(0, b"\x0a" + b"8.0.42\0" + struct.pack("<I", 1) + SCRAMBLE[:8] + b"\0"
                  + struct.pack("<H", CAPABILITIES & 0xFFFF) + bytes([33]) + struct.pack("<H", 2)
                  + struct.pack("<H", CAPABILITIES >> 16) + bytes([21]) + bytes(10) + SCRAMBLE[8:] + b"\0"
                  + b"mysql_native_password\0")
ASK_FOR_CLEAR_TEXT = packet(2, b"\xfe" + b"mysql_clear_password\0")


def read_packet(connection):
    """One packet's bytes as received (header included), b"" once the client hung up."""
    received = b""
    while len(received) < 4 or len(received) < 4 + int.from_bytes(received[:3], "little"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


listener = socket.create_server(("127.0.0.1", port))
listener.settimeout(wait_seconds)
connection, _ = listener.accept()
connection.settimeout(wait_seconds)
connection.sendall(GREETING)
sent = b""
try:
    login = read_packet(connection)
    sent += login
    if login:
        connection.sendall(ASK_FOR_CLEAR_TEXT)
        sent += read_packet(connection)
except socket.timeout:
    pass
connection.close()
print(json.dumps({"sent": sent.hex()}))
