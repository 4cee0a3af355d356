"""The mysql role's filters: the caching_sha2_password hash the rotation sets
(one MySQL logs in with), and the server certificate's names (what a verifying
client compares with the host it connected to)."""
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.flaskstack.stack.plugins.filter.mysql import (
    flaskstack_accounts_with_other_password, flaskstack_caching_sha2_hash, flaskstack_most_advanced_member,
    flaskstack_subject_alt_name)

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


# MySQL's documented mysql_native_password hash of 'password'.
NATIVE = {"Host": "10.0.0.3", "plugin": "mysql_native_password",
          "authentication_string": "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"}
# Oracle MySQL 9.7 stored this for CREATE USER ... IDENTIFIED WITH sha256_password BY 'correct horse battery'
# (SELECT HEX(authentication_string): its own salt, 20 characters, some of them control characters).
SHA256 = {"Host": "127.0.0.1", "plugin": "sha256_password",
          "authentication_string": "$5$>O\x14\x1cJ\\b2S>\x1be7*<WWS\x1d{$eNmdhmCmPVsf4oKWEaA/HYDOFpskzjfSmWzYMe2UkM4"}
CACHING = {"Host": "10.0.0.4", "plugin": "caching_sha2_password", "authentication_string": MYSQL_ACCEPTED}


def test_accounts_whose_stored_hash_is_the_password_are_left_out():
    assert flaskstack_accounts_with_other_password([NATIVE], "password") == []
    assert flaskstack_accounts_with_other_password([SHA256, CACHING], "correct horse battery") == []


def test_accounts_with_another_password_are_named_in_order():
    assert flaskstack_accounts_with_other_password([NATIVE, SHA256, CACHING], "new password") == [
        NATIVE, SHA256, CACHING]
    assert flaskstack_accounts_with_other_password([NATIVE, SHA256], "password") == [SHA256]


def test_a_hash_that_cannot_be_checked_counts_as_another_password():
    socket = {"Host": "localhost", "plugin": "auth_socket", "authentication_string": ""}
    empty = {"Host": "localhost", "plugin": "caching_sha2_password", "authentication_string": ""}
    assert flaskstack_accounts_with_other_password([socket, empty], "password") == [socket, empty]


def test_addresses_are_ip_entries():
    assert flaskstack_subject_alt_name("10.0.0.2") == "IP:10.0.0.2"
    assert flaskstack_subject_alt_name("127.0.0.1") == "IP:127.0.0.1"
    assert flaskstack_subject_alt_name("fd00::0002") == "IP:fd00::2"


def test_names_are_dns_entries():
    assert flaskstack_subject_alt_name("db1") == "DNS:db1"
    assert flaskstack_subject_alt_name("db1.example.org") == "DNS:db1.example.org"
    # Looks numeric, is not an address.
    assert flaskstack_subject_alt_name("10.0.0") == "DNS:10.0.0"


# @@gtid_executed as MySQL 9.7 printed it on a group's members: the group's
# transactions, and a member's own from before it joined, across lines.
GROUP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
OWN = "b9d8e5da-efd5-11f1-b30d-0242ac120002"


def test_the_member_with_every_transaction_is_chosen():
    executed = {"db1": f"{GROUP}:1-40,\n{OWN}:1-2", "db2": f"{GROUP}:1-42,\n{OWN}:1-2", "db3": f"{GROUP}:1-41"}
    assert flaskstack_most_advanced_member(executed) == "db2"


def test_a_gap_is_no_superset():
    # db1 misses transaction 20 that db2 holds, and db2 misses 41 that db1 holds.
    executed = {"db1": f"{GROUP}:1-19:21-41", "db2": f"{GROUP}:1-40"}
    assert flaskstack_most_advanced_member(executed) is None


def test_diverged_members_have_no_most_advanced_one():
    # Each wrote a transaction the other lacks (an errant one, of its own uuid).
    executed = {"db1": f"{GROUP}:1-40,{OWN}:1", "db2": f"{GROUP}:1-40,{OWN.replace('b9', 'c9')}:1"}
    assert flaskstack_most_advanced_member(executed) is None


def test_tagged_transactions_count_apart_from_untagged_ones():
    executed = {"db1": f"{GROUP}:1-40:ops:1-3", "db2": f"{GROUP}:1-40"}
    assert flaskstack_most_advanced_member(executed) == "db1"
    assert flaskstack_most_advanced_member({"db1": f"{GROUP}:ops:1-3", "db2": f"{GROUP}:1-3"}) is None


def test_identical_members_pick_one_and_a_fresh_server_counts_as_empty():
    assert flaskstack_most_advanced_member({"db1": f"{GROUP}:1-5", "db2": f"{GROUP}:1-5"}) == "db1"
    assert flaskstack_most_advanced_member({"db1": "", "db2": f"{GROUP}:1-5"}) == "db2"
