"""The hash MySQL stores for a caching_sha2_password account, from the password and a fixed salt."""
from ansible.errors import AnsibleFilterError
from ansible_collections.community.mysql.plugins.module_utils.implementations.mysql.hash import (
    mysql_sha256_password_hash)


def flaskstack_caching_sha2_hash(password, salt):
    """What community.mysql's mysql_user stores for plugin_auth_string and salt
    (its own function): the users tasks compare and set the account's hash with
    it, so a rotation sets exactly what a later run expects."""
    if len(salt) != 20:
        raise AnsibleFilterError("flaskstack_caching_sha2_hash: the salt must be 20 characters")
    return mysql_sha256_password_hash(password, salt)


class FilterModule:
    def filters(self):
        return {"flaskstack_caching_sha2_hash": flaskstack_caching_sha2_hash}
