"""The mysql role's filters: the caching_sha2_password hash the rotation sets
(one MySQL logs in with), and the server certificate's names (what a verifying
client compares with the host it connected to)."""
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.flaskstack.stack.plugins.filter.mysql import flaskstack_caching_sha2_hash, flaskstack_subject_alt_name

# Oracle MySQL 9.7 took this hash (CREATE USER ... IDENTIFIED WITH
# caching_sha2_password AS '<hash>') and logged the account in with
# 'correct horse battery', and refused another password.
SALT = "F1askstackSaltVector"
MYSQL_ACCEPTED = "$A$005$F1askstackSaltVectorri4.7hruKlJs/qpIO8nQY9FIefQDP0lmoLPNRiOH4aD"


def test_the_hash_is_one_mysql_logs_in_with():
    assert flaskstack_caching_sha2_hash("correct horse battery", SALT) == MYSQL_ACCEPTED


def test_another_password_or_salt_gives_another_hash():
    assert flaskstack_caching_sha2_hash("correct horse battery!", SALT) != MYSQL_ACCEPTED
    assert flaskstack_caching_sha2_hash("correct horse battery", "A" * 20) != MYSQL_ACCEPTED


def test_a_salt_of_another_length_is_refused():
    with pytest.raises(AnsibleFilterError):
        flaskstack_caching_sha2_hash("pw", "short")


def test_addresses_are_ip_entries():
    assert flaskstack_subject_alt_name("10.0.0.2") == "IP:10.0.0.2"
    assert flaskstack_subject_alt_name("127.0.0.1") == "IP:127.0.0.1"
    assert flaskstack_subject_alt_name("fd00::0002") == "IP:fd00::2"


def test_names_are_dns_entries():
    assert flaskstack_subject_alt_name("db1") == "DNS:db1"
    assert flaskstack_subject_alt_name("db1.example.org") == "DNS:db1.example.org"
    # Looks numeric, is not an address.
    assert flaskstack_subject_alt_name("10.0.0") == "DNS:10.0.0"
