"""`make lab`'s short version: lab/playbook.yml on this host, with 1-second
queries, and the figures it reports must agree with the limits it set (peak
MySQL sessions equal each limit, the queue's peak the excess, and after a
change under load, the new limit once the old worker left)."""
import json
import subprocess
import sys

import pytest
from flaskstack_testlib import PROJECT, failure_text, run_playbook, wait_for

LIMITS = [10, 3]


@pytest.mark.host_independent
def test_the_lab_reports_what_the_limits_let_through(stack, observe, tmp_path):
    output = tmp_path / "lab"
    # An old HAProxy worker an earlier test left (one holding a connection until
    # hard-stop-after) would add its session to the lab's first count.
    assert wait_for(lambda: stack.haproxy_workers()[1] == 0, 60) is not None
    result = run_playbook("--limit", stack.name, "-e", f"lab_host={stack.name}", "-e", f"lab_output={output}",
                          "-e", json.dumps({"lab_limits": LIMITS, "lab_sleep_seconds": 1}), playbook="lab/playbook.yml")
    # The lab gives HAProxy the inventory's limits back; its old worker leaves within the bound.
    assert wait_for(lambda: stack.haproxy_workers()[1] == 0, 60) is not None
    assert result.returncode == 0, failure_text(result)
    # make lab's second step: the report and the picture, on the controller.
    report = subprocess.run([sys.executable, str(PROJECT / "lab" / "report.py"), str(output.with_suffix(".json")),
                             "--markdown", str(output.with_suffix(".md")), "--picture", str(output.with_suffix(".png"))],
                            capture_output=True, text=True, check=False)
    assert report.returncode == 0, report.stderr
    figures = json.loads(output.with_suffix(".json").read_text())["figures"]
    for item in figures:
        observe(f"[{stack.name}] lab: {json.dumps(item)}")
    first, change, second = figures
    assert (first["kind"], first["limit"], second["limit"]) == ("burst", LIMITS[0], LIMITS[1])
    # Messages as JSON strings: pytest shows a string whole, a dict cut short.
    for burst in (first, second):
        assert burst["peak_mysql_sessions"] == burst["limit"] == burst["haproxy_smax"], json.dumps(burst)
        assert burst["haproxy_qmax"] == burst["peak_queue_sampled"] == burst["excess"] == burst["limit"], json.dumps(burst)
        assert burst["failed"] == 0 and burst["agrees"], json.dumps(burst)
    assert (change["from_limit"], change["to_limit"]) == tuple(LIMITS)
    assert change["reload_at"] is not None and change["old_worker_gone_at"] is not None, json.dumps(change)
    assert change["peak_mysql_before"] == LIMITS[0], json.dumps(change)
    assert change["peak_mysql_after"] <= LIMITS[1], json.dumps(change)
    assert change["failed"] == 0 and change["agrees"], json.dumps(change)
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| 3 | 6 | 3 | 3 | 3 | 3 |" in output.with_suffix(".md").read_text()
    assert int(stack.server()["slim"]) == 10, "the lab left a limit of its own behind"
