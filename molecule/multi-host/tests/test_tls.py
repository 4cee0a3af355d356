"""Verified TLS from the app hosts to MySQL through lb1, which passes it through
at layer 4: the app's sessions are encrypted, the certificate must come from
the stack's CA and name the proxy address the app connects to, and the app
account refuses plain text. Each failure mode is shown failing, clearly."""
import secrets

import pytest
from flaskstack_testlib import DB_USER, PROXY_PORT, assert_succeeded, changed_tasks, failure_text

APP_HOSTS = ("app1", "app2")
TLS_DIR = "/etc/mysql/flaskstack-tls"
SESSION_TLS = ("import app; from sqlalchemy import text\n"
               "with app.engine.connect() as c:\n"
               "    print(dict(c.execute(text(\"SHOW SESSION STATUS LIKE 'Ssl_%%'\")).all())['Ssl_version'])\n")
# One request through the real app (its Flask app, engine and error handling), as gunicorn would serve it.
ONE_REQUEST = "import app; print(app.app.test_client().get('/todos').status_code)"
# Another CA, which never signed anything of the stack's.
OTHER_CA = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other-ca "
            "-keyout /tmp/other-ca.key -out /tmp/other-ca.pem 2>/dev/null")


def log_in(stack, address, account=None, **tls):
    """Log in as the app's account (or another, a (user, password) pair), from
    this host, with PyMySQL's TLS arguments: 'connected' or the error."""
    arguments = ", ".join(f"{name}={value!r}" for name, value in tls.items())
    user, password = map(repr, account) if account else ("os.environ['FLASKAPP_DB_USER']",
                                                         "os.environ['FLASKAPP_DB_PASSWORD']")
    return stack.app_python(
        "import os, pymysql\n"
        "try:\n"
        f"    pymysql.connect(host={address!r}, port={PROXY_PORT}, user={user},\n"
        f"                    password={password}, connect_timeout=5, {arguments}).close()\n"
        "    print('connected')\n"
        "except pymysql.err.OperationalError as error:\n"
        "    print(error.args[0], error.args[1])\n").stdout.strip()


@pytest.mark.parametrize("name", APP_HOSTS)
def test_the_apps_sessions_are_encrypted_and_verified(stacks, name):
    env = stacks[name].env_file()
    assert "FLASKAPP_DB_TLS=verify_identity\n" in env
    assert "FLASKAPP_DB_TLS_CA=/opt/flaskapp/db-ca.pem\n" in env
    # The server's own view of the session the app's engine opened.
    result = stacks[name].app_python(SESSION_TLS)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() in ("TLSv1.2", "TLSv1.3"), result.stdout


def test_mysql_serves_a_certificate_of_the_stacks_ca_naming_the_proxy(stacks, address):
    db = stacks["db1"]
    names = db.host.check_output("openssl x509 -in /etc/mysql/flaskstack-tls/server-cert.pem -noout -ext subjectAltName")
    assert f"IP Address:{address['lb1']}" in names and "DNS:db1" in names, names
    assert db.host.run("openssl verify -CAfile /etc/mysql/flaskstack-tls/ca.pem "
                       "/etc/mysql/flaskstack-tls/server-cert.pem").rc == 0
    key = db.host.file("/etc/mysql/flaskstack-tls/server-key.pem")
    assert (key.user, key.group, key.mode) == ("root", "mysql", 0o640)
    assert db.host.file("/etc/mysql/flaskstack-tls").mode == 0o750


def test_a_client_that_does_not_trust_the_stacks_ca_is_refused(stacks, address):
    app1 = stacks["app1"]
    # The system's public CAs, not the stack's.
    answer = log_in(app1, address["lb1"], ssl_ca="/etc/ssl/certs/ca-certificates.crt", ssl_verify_cert=True)
    assert answer.startswith("2003 ") and "CERTIFICATE_VERIFY_FAILED" in answer, answer
    # The same client trusting the stack's CA gets in.
    assert log_in(app1, address["lb1"], ssl_ca="/opt/flaskapp/db-ca.pem", ssl_verify_identity=True) == "connected"


def test_an_app_that_trusts_another_ca_fails_clearly_and_never_falls_back(stacks):
    app1 = stacks["app1"]
    app1.host.check_output(OTHER_CA)
    result = app1.app_python(ONE_REQUEST, FLASKAPP_DB_TLS_CA="/tmp/other-ca.pem")
    # Served as the app serves an unreachable database, and the log says why.
    assert result.stdout.strip() == "503", result.stdout + result.stderr
    assert "certificate verify failed" in result.stderr, result.stderr
    # The app as deployed serves the same request.
    assert app1.app_python(ONE_REQUEST).stdout.strip() == "200"


def test_verify_identity_refuses_a_proxy_name_the_certificate_does_not_hold(stacks):
    app1 = stacks["app1"]
    # lb1 by its name, which the certificate does not list (it lists lb1's address).
    result = app1.app_python(ONE_REQUEST, FLASKAPP_DB_HOST="lb1")
    assert result.stdout.strip() == "503", result.stdout + result.stderr
    assert "certificate verify failed" in result.stderr and "mismatch" in result.stderr, result.stderr
    # verify_ca checks the CA only: the same name works.
    assert app1.app_python(ONE_REQUEST, FLASKAPP_DB_HOST="lb1", FLASKAPP_DB_TLS="verify_ca").stdout.strip() == "200"


def test_mysql_refuses_plain_connections_of_any_account_and_old_tls(stacks, address, primary):
    """Plain text is refused for the app's account (REQUIRE SSL: 1045, with the
    password that works over TLS) and, by require_secure_transport, for any
    account over TCP: one made for this test, with no REQUIRE SSL of its own,
    logs in through lb1 over TLS only. TLS 1.2 and newer."""
    # The account made on the group's primary, which the listener's sessions reach.
    app1, db = stacks["app1"], primary
    tls = {"ssl_ca": "/opt/flaskapp/db-ca.pem", "ssl_verify_identity": True}
    assert log_in(app1, address["lb1"], ssl_disabled=True).startswith("1045 ")
    assert log_in(app1, address["lb1"], **tls) == "connected"
    assert db.root_sql(f"SELECT DISTINCT ssl_type FROM mysql.user WHERE User = '{DB_USER}'").split() == ["ANY"]
    account = ("flaskstack_plain_test", secrets.token_hex(12))
    db.root_sql(f"CREATE USER '{account[0]}'@'{address['lb1']}' IDENTIFIED BY '{account[1]}' REQUIRE NONE")
    try:
        # The same password over TLS gets in, so the refusal is the transport's. MariaDB
        # reports it as access denied (1045), MySQL as insecure transport (3159).
        plain = log_in(app1, address["lb1"], account, ssl_disabled=True)
        assert plain.startswith(("1045 ", "3159 ")), plain
        assert log_in(app1, address["lb1"], account, **tls) == "connected"
    finally:
        db.root_sql(f"DROP USER '{account[0]}'@'{address['lb1']}'")
    assert db.root_sql("SELECT @@require_secure_transport, @@tls_version").split() == ["1", "TLSv1.2,TLSv1.3"]


# The serial of the certificate the app's own login through lb1 meets. A client
# that leaves the handshake (openssl s_client -starttls mysql) would count as a
# failed connection from lb1, which this scenario's MySQL blocks after three.
SERVED_SERIAL = ("import os, pymysql\n"
                 "from cryptography import x509\n"
                 "c = pymysql.connect(host=os.environ['FLASKAPP_DB_HOST'], port=int(os.environ['FLASKAPP_DB_PORT']),\n"
                 "                    user=os.environ['FLASKAPP_DB_USER'], password=os.environ['FLASKAPP_DB_PASSWORD'],\n"
                 "                    ssl_ca=os.environ['FLASKAPP_DB_TLS_CA'], ssl_verify_identity=True, connect_timeout=5)\n"
                 "print(x509.load_der_x509_certificate(c._sock.getpeercert(True)).serial_number)\n"
                 "c.close()\n")


def certificate_serials(stacks, db):
    """(the serial of the certificate the app's session through lb1 is served,
    by the group's primary, the serial of the one on the primary's disk)."""
    served = stacks["app1"].app_python(SERVED_SERIAL)
    assert served.rc == 0, served.stderr
    on_disk = db.host.check_output("openssl x509 -noout -serial -in %s/server-cert.pem", TLS_DIR)
    return int(served.stdout), int(on_disk.split("=")[1], 16)


def test_a_run_cut_off_before_the_tls_reload_leaves_the_next_run_to_reload(stacks, primary):
    """MySQL rereads its certificate on a reload, not a restart, so the unit's
    start time cannot tell that a new one was never loaded: a run (--tags
    mysql) that writes a new certificate is SIGKILLed at once, and the next
    run, which finds the file already right, still reloads it."""
    db = primary
    served, on_disk = certificate_serials(stacks, db)
    assert served == on_disk
    # Without it, the next run signs a new certificate.
    db.host.check_output("rm %s/server-cert.pem", TLS_DIR)
    output, cut = db.interrupted_rerun("--tags", "mysql", after_change_of="mysql : Install the server's certificate")
    try:
        assert cut, f"no new certificate was written:\n{output[-3000:]}"
        # The premise: the new certificate is on disk, the old one still served.
        served_then, on_disk_then = certificate_serials(stacks, db)
        assert served_then == served != on_disk_then
        rerun = assert_succeeded(db.rerun("--tags", "mysql"))
        changed = changed_tasks(rerun.stdout)
        assert "mysql : Install the server's certificate" not in changed, "the cut-off run had not written it"
        # The reload itself reports no change (mysql_query): the look that owed it does, and so does its marker.
        assert "mysql : Apply what an earlier run changed but never applied" in changed, failure_text(rerun)
        assert "mysql : Mark MySQL's TLS files as loaded" in changed, changed
        assert "mysql : Restart MySQL" not in changed, changed
        served_now, on_disk_now = certificate_serials(stacks, db)
        assert served_now == on_disk_now != served
    except BaseException:
        # Leave the primary serving a certificate on disk for the tests after this one.
        db.rerun("--tags", "mysql")
        raise
