"""The server certificate's names: what a verifying client compares with the host it connected to."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "filter_plugins"))
from tls_names import flaskstack_subject_alt_name  # noqa: E402


def test_addresses_are_ip_entries():
    assert flaskstack_subject_alt_name("10.0.0.2") == "IP:10.0.0.2"
    assert flaskstack_subject_alt_name("127.0.0.1") == "IP:127.0.0.1"
    assert flaskstack_subject_alt_name("fd00::0002") == "IP:fd00::2"


def test_names_are_dns_entries():
    assert flaskstack_subject_alt_name("db1") == "DNS:db1"
    assert flaskstack_subject_alt_name("db1.example.org") == "DNS:db1.example.org"
    # Looks numeric, is not an address.
    assert flaskstack_subject_alt_name("10.0.0") == "DNS:10.0.0"
