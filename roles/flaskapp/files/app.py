"""The write-up's todo app, hardened.

Same endpoints and response shapes as the original; SQL takes no text from the
URL (the sleep length is a checked number passed as a bound parameter), bad
input and an unreachable database give JSON errors, and the credentials come
from the environment systemd loads from a root-only file.
"""
import os
import re
import time

from flask import Flask, jsonify
from pymysql.connections import Connection
from pymysql.constants.CLIENT import SSL as SERVER_OFFERS_TLS
from pymysql.err import OperationalError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

SLEEP_MAX_SECONDS = float(os.environ.get("FLASKAPP_SLEEP_MAX_SECONDS", "60"))
# Digits with an optional fraction: no sign, exponent, NaN or infinity.
SECONDS_PATTERN = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")

# "disabled" when the whole path to MySQL is on this host: TLS would protect
# nothing there, and PyMySQL 1.2 builds a TLS context (loading the CA store,
# ~30 ms of CPU) for every new connection, which the pool opens often under
# load. "preferred" is the driver's default: TLS whenever the server offers it.
# The verify modes trust only the stack's CA; verify_identity also checks that
# the certificate names the host connected to (the proxy: HAProxy passes TLS through).
DB_TLS = os.environ.get("FLASKAPP_DB_TLS", "preferred")
DB_TLS_VERIFIED = DB_TLS in ("verify_ca", "verify_identity")
DB_CONNECT_ARGS = {"connect_timeout": int(os.environ.get("FLASKAPP_DB_CONNECT_TIMEOUT", "5"))}
if DB_TLS == "disabled":
    DB_CONNECT_ARGS["ssl_disabled"] = True
elif DB_TLS_VERIFIED:
    DB_CONNECT_ARGS.update(ssl_ca=os.environ["FLASKAPP_DB_TLS_CA"], ssl_verify_cert=True,
                           ssl_verify_identity=DB_TLS == "verify_identity")


class TLSOnlyConnection(Connection):
    """A verify mode refuses a server that offers no TLS before it sends the
    user name or answers any authentication request: PyMySQL 1.1 (Ubuntu
    20.04's Python 3.8) goes on in plain text there, and a machine on the path
    could then ask for the password in clear text (mysql_clear_password)."""

    def _request_authentication(self):
        if not self.server_capabilities & SERVER_OFFERS_TLS:
            raise OperationalError(2026, "TLS is required (FLASKAPP_DB_TLS=%s), but the server did not offer it" % DB_TLS)
        super()._request_authentication()


engine = create_engine(
    URL.create(
        "mysql+pymysql",
        username=os.environ["FLASKAPP_DB_USER"],
        password=os.environ["FLASKAPP_DB_PASSWORD"],
        host=os.environ.get("FLASKAPP_DB_HOST", "127.0.0.1"),
        port=int(os.environ.get("FLASKAPP_DB_PORT", "5555")),
        database=os.environ.get("FLASKAPP_DB_NAME", "test"),
    ),
    pool_size=int(os.environ.get("FLASKAPP_DB_POOL_SIZE", "1")),
    # Connections opened beyond the pool under load and closed after one use
    # (SQLAlchemy's default, 10, is the write-up's behaviour); 0 keeps exactly
    # pool_size per worker, so no request pays for a new connection.
    max_overflow=int(os.environ.get("FLASKAPP_DB_MAX_OVERFLOW", "10")),
    pool_recycle=int(os.environ.get("FLASKAPP_DB_POOL_RECYCLE", "-1")),
    # One round trip per request, the query itself: no ping when a connection
    # leaves the pool (a dead one fails the read, which read() retries on a new
    # connection) and, each statement committing on its own, no ROLLBACK when
    # it goes back (PyMySQL's server status tells the autocommit mode, no query).
    isolation_level="AUTOCOMMIT",
    skip_autocommit_rollback=True,
    connect_args=DB_CONNECT_ARGS,
)


# When each connect this worker has under way began: under load they wait in
# HAProxy's queue for a server slot, and a slot frees only when a connection closes.
connects_under_way = {}
# A connect under way this long is waiting in HAProxy's queue: a login takes
# milliseconds (tens with TLS on a loaded host), and so does a refused one
# (during a password change on MariaDB, where closing a logged-in connection
# would only make one more login fail: measured, twice the failed requests).
QUEUED_AFTER_SECONDS = 0.25


@event.listens_for(engine, "do_connect")
def note_connects_under_way(dialect, _record, cargs, cparams):
    key = object()
    connects_under_way[key] = time.monotonic()
    try:
        return (TLSOnlyConnection if DB_TLS_VERIFIED else dialect.loaded_dbapi.connect)(*cargs, **cparams)
    finally:
        del connects_under_way[key]


def release_if_others_wait(conn):
    """A connection kept in the pool while this worker's other requests wait in
    HAProxy's queue would keep its slot for whoever asks next, and a request
    already queued would wait until the queue timeout under steady load. So
    while one waits, a connection that finished its query closes instead, and
    its slot goes to the longest waiter in HAProxy's queue (first come, first
    served). A connect per request only while requests queue; none otherwise."""
    if connects_under_way and time.monotonic() - min(connects_under_way.values()) > QUEUED_AFTER_SECONDS:
        conn.invalidate()


# Rewritten by the site playbook once the proxy in front of MySQL has reloaded
# (new limits): connections opened before it go through the proxy's old worker,
# which keeps its old limits for as long as they stay open.
PROXY_GENERATION_FILE = os.environ.get("FLASKAPP_PROXY_GENERATION_FILE", "")


def proxy_generation():
    """When the proxy last took new settings (the file's mtime, ns; 0 without one)."""
    try:
        return os.stat(PROXY_GENERATION_FILE).st_mtime_ns
    except OSError:
        return 0


@event.listens_for(engine, "connect")
def note_when_opened(_dbapi_connection, record):
    record.info["opened_ns"] = time.time_ns()


@event.listens_for(engine, "checkout")
def through_the_current_proxy(_dbapi_connection, record, _proxy):
    """A pooled connection opened before the proxy's reload is replaced as it
    leaves the pool (SQLAlchemy closes it and opens another, through the new
    worker), so that the new limits hold within moments under traffic rather
    than at hard-stop-after. A stat() per checkout; one connect per reload."""
    if record.info.get("opened_ns", 0) < proxy_generation():
        raise DisconnectionError("opened through the proxy's previous worker")


app = Flask(__name__)


def error(status, message):
    response = jsonify(error=message)
    response.status_code = status
    return response


@app.errorhandler(HTTPException)
def http_error(exc):
    return error(exc.code, exc.description)


@app.errorhandler(SQLAlchemyError)
def database_error(exc):
    # The driver's message names the cause (a refused login, a certificate that
    # does not verify); it never holds the password.
    app.logger.warning("database error: %s: %s", exc.__class__.__name__, getattr(exc, "orig", None) or exc)
    return error(503, "database unavailable")


@app.get("/")
def welcome():
    return "Welcome!\n"


def read(statement, **params):
    """Run a read and return its rows. A read whose connection is lost (an old
    HAProxy worker stopped after a reload, MySQL restarted) is retried once on
    a new connection, so the client never sees it; reads are safe to repeat.
    A connect that fails is not retried: HAProxy has retried it already."""
    for attempt in (1, 2):
        with engine.connect() as conn:
            try:
                rows = conn.execute(text(statement), params).all()
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                app.logger.warning("connection lost during a read (%s): retrying once", exc.orig)
                continue
            release_if_others_wait(conn)
            return rows


@app.get("/todos")
def list_todos():
    rows = read("SELECT id, item, status FROM todos")
    return {row.id: {"item": row.item, "status": row.status} for row in rows}


@app.get("/sleep/<s>")
def slow_query(s):
    if not SECONDS_PATTERN.fullmatch(s) or float(s) > SLEEP_MAX_SECONDS:
        return error(400, f"s must be a number from 0 to {SLEEP_MAX_SECONDS:g}")
    seconds = float(s)
    read("SELECT SLEEP(:seconds)", seconds=seconds)
    return {"slept": int(seconds) if seconds.is_integer() else seconds}
