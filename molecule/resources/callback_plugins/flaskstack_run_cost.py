"""Records what each playbook run of `make test` cost: one JSON line per run
(scenario, test, playbook, hosts, tags, wall seconds, the controller's CPU
seconds, seconds it waited for the test machine's lock) in
$FLASKSTACK_RUN_LOG. run-scenarios.sh sets that and this plugin's path;
run_costs.py prints the costliest runs. Not enabled anywhere else: without
FLASKSTACK_RUN_LOG it does nothing."""
import json
import os
import resource
import time

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: flaskstack_run_cost
type: aggregate
short_description: one line per playbook run with its wall time, for the test suite's cost table
description: Appends a JSON line per playbook run to the file named by FLASKSTACK_RUN_LOG.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "flaskstack_run_cost"
    # Loaded wherever its folder is on the callback path: run-scenarios.sh puts it there.
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._started = time.monotonic()
        self._playbook = None
        # Per task (and handler): its name and when it began; the slowest ones go in the record.
        self._current = None
        self._tasks = {}

    def v2_playbook_on_start(self, playbook):
        self._started = time.monotonic()
        self._playbook = os.path.basename(playbook._file_name)

    def _task_started(self, task):
        self._finish_task()
        self._current = (task.get_name(), time.monotonic())

    def _finish_task(self):
        if self._current:
            name, began = self._current
            self._tasks[name] = self._tasks.get(name, 0) + time.monotonic() - began
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_started(task)

    def v2_playbook_on_stats(self, stats):
        log = os.environ.get("FLASKSTACK_RUN_LOG")
        if not log:
            return
        self._finish_task()
        slowest = sorted(self._tasks.items(), key=lambda item: item[1], reverse=True)[:3]
        args = context.CLIARGS
        record = {
            "scenario": os.environ.get("MOLECULE_SCENARIO_NAME", ""),
            # pytest names the test (and its phase) in the environment the run inherits;
            # molecule's own runs (converge, idempotence) have none.
            "test": os.environ.get("PYTEST_CURRENT_TEST", "molecule"),
            "playbook": self._playbook,
            "hosts": args.get("subset") or ",".join(sorted(stats.processed)),
            "tags": ",".join(t for t in args.get("tags", ()) if t != "all"),
            "check": bool(args.get("check")),
            "seconds": round(time.monotonic() - self._started, 1),
            # The controller's CPU for the run: Ansible, its workers and their connections.
            "cpu": round(sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF,
                         resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime")), 1),
            "lock_wait": float(os.environ.get("FLASKSTACK_LOCK_WAIT", 0)),
            "failed": bool(stats.failures or stats.dark),
            "slowest_tasks": [[name, round(seconds, 1)] for name, seconds in slowest],
            # Wall-clock end, to line runs up with the measured windows (flaskstack_testlib).
            "ended_at": round(time.time(), 1),
        }
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
