"""Whether a file a role writes is already as the role would write it
(flaskstack.stack.file_current), or a directory as it would create it
(flaskstack.stack.directory_current): on a rerun, the task that writes it is
skipped, saving its module runs (the template module's stat,
then its file module for the attributes). The roles' look at their units
(flaskstack.stack.restart_owed, option `files`) reports every such file in the
same module run; ansible.builtin.find with get_checksum reports them the same way."""
from __future__ import annotations

import hashlib

from ansible.errors import AnsibleFilterError


def flaskstack_file_current(files, path, content, mode, owner="root", group="root"):
    """True if `files` (restart_owed's or find's `files`: one dict per file)
    lists `path` as a regular file whose content is `content` (by its SHA-1)
    and whose mode, owner and group are the ones given; False otherwise, so
    that the task writing it runs (and says what it changes). A file not
    listed counts as not current."""
    if not isinstance(files, list):
        raise AnsibleFilterError("flaskstack.stack.file_current: expects the list of files restart_owed or find reports")
    if not isinstance(content, str):
        raise AnsibleFilterError("flaskstack.stack.file_current: the content must be a string")
    for entry in files:
        if entry.get("path") == path:
            return bool(entry.get("isreg")
                        and entry.get("checksum") == hashlib.sha1(content.encode("utf-8")).hexdigest()
                        and entry.get("mode") == mode and entry.get("pw_name") == owner and entry.get("gr_name") == group)
    return False


def flaskstack_directory_current(files, path, mode, owner="root", group="root"):
    """True if `files` lists `path` as a directory (not a link) with the mode,
    owner and group given: the task that creates it can be skipped."""
    if not isinstance(files, list):
        raise AnsibleFilterError("flaskstack.stack.directory_current: expects the list of files restart_owed or find reports")
    for entry in files:
        if entry.get("path") == path:
            return bool(entry.get("isdir") and entry.get("mode") == mode
                        and entry.get("pw_name") == owner and entry.get("gr_name") == group)
    return False


class FilterModule:
    def filters(self):
        return {"file_current": flaskstack_file_current, "directory_current": flaskstack_directory_current}
