"""The caching_sha2_password hash the rotation sets: one MySQL logs in with."""
import pathlib
import sys

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "filter_plugins"))
from password_hash import flaskstack_caching_sha2_hash  # noqa: E402

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
