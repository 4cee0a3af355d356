"""Makes each playbook run of `make test` cheaper on the controller, changing
nothing that runs on the hosts. Ansible forks a worker per task and host, and
every worker redid work its parent could have done once:

- it built each module's payload again for every new playbook run: the payloads
  are cached in a folder of the run's own, gone when it ends. Here that folder
  is one shared by every run of one `make test` that resolves collections from
  the same paths (the default scenario's installed copy of flaskstack.stack
  gets a folder of its own, so it still proves the packaged module_utils);
- it imported Ansible's filter and test plugins again: they are loaded once in
  the parent, so the workers inherit them;
- its garbage collector walked the objects inherited from the parent, copying
  their memory: those are frozen (gc.freeze) as each play starts.

A warm single-host rerun: 9.5 CPU-s on the controller without this, 6 with it.
run-scenarios.sh sets FLASKSTACK_ANSIBALLZ_CACHE (a folder it removes at the
end) and this plugin's path; without that variable the plugin does nothing."""
import gc
import hashlib
import json
import os

from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

DOCUMENTATION = """
name: flaskstack_lean_runs
type: aggregate
short_description: the test suite's playbook runs share module payloads and skip repeated work in forked workers
description: Shares the module payload cache between runs, preloads filter and test plugins, freezes the parent's objects.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "flaskstack_lean_runs"
    # Loaded wherever its folder is on the callback path: run-scenarios.sh puts it there.
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._shared = os.environ.get("FLASKSTACK_ANSIBALLZ_CACHE")

    def v2_playbook_on_start(self, playbook):
        if not self._shared:
            return
        # Playbook-adjacent collections are known by now: a module name maps to
        # the same file for every run that shares a folder.
        paths = json.dumps([list(AnsibleCollectionConfig.collection_paths),
                            list(AnsibleCollectionConfig.playbook_paths)])
        shared = os.path.join(self._shared, hashlib.sha256(paths.encode()).hexdigest()[:16])
        os.makedirs(shared, exist_ok=True)
        own = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        if not os.path.lexists(own):
            # Ansible removes its local tmp folder at the end: the link, not the shared folder.
            os.symlink(shared, own)
        list(filter_loader.all())
        list(test_loader.all())

    def v2_playbook_on_play_start(self, play):
        if self._shared:
            gc.freeze()
