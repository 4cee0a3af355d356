import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from run_costs import main, table  # noqa: E402


def run(seconds, scenario="oracle-mysql", test="molecule", tags="", lock_wait=0.0, hosts="debiansid1", cpu=1.0):
    return {"scenario": scenario, "test": test, "playbook": "site.yml", "hosts": hosts, "tags": tags,
            "check": False, "seconds": seconds, "lock_wait": lock_wait, "failed": False, "cpu": cpu}


def test_scenarios_show_wall_time_runs_and_their_sum():
    runs = [run(100.0), run(50.5, lock_wait=12.0), run(30.0, scenario="default")]
    lines = table(runs, [("default", 600, 0), ("oracle-mysql", 1230, 1)])
    assert lines[1].split() == ["default", "10m00s", "1", "0m30s", "0m01s", "0m00s", "0", "(0m00s)"]
    assert lines[2].split() == ["oracle-mysql", "20m30s", "2", "2m30s", "0m02s", "0m12s", "0", "(0m00s)", "FAILED"]


def test_measured_windows_are_counted_apart_from_the_runs_with_their_waits():
    window = {"kind": "window", "scenario": "default", "test": "t", "seconds": 65.0, "lock_wait": 20.0}
    runs = [run(30.0, scenario="default", lock_wait=5.0, cpu=61.0), window, dict(window, seconds=10.0, lock_wait=0.0)]
    lines = table(runs, [("default", 600, 0)])
    assert lines[1].split() == ["default", "10m00s", "1", "0m30s", "1m01s", "0m25s", "2", "(1m15s)"]
    # A window is not a playbook run: never among the costliest.
    assert len(lines[lines.index("") + 2:]) == 1


def test_the_costliest_runs_come_first_named_by_their_test():
    runs = [run(10.0), run(300.0, test="tests/test_stack.py::test_x (call)", tags="mysql"), run(40.0)]
    lines = table(runs, [("oracle-mysql", 400, 0)], count=2)
    costliest = lines[lines.index("") + 2:]
    assert len(costliest) == 2
    assert costliest[0].split()[0] == "300.0" and "--tags mysql" in costliest[0]
    assert costliest[0].endswith("test_x (call)")
    assert costliest[1].split()[0] == "40.0" and costliest[1].endswith("molecule's own run")


def test_the_costliest_tests_by_cpu_follow_the_runs():
    tests = [{"kind": "test", "scenario": "default", "test": f"tests/test_stack.py::{name}", "seconds": 5.0,
              "cpu": cpu, "container_cpu": containers}
             for name, cpu, containers in (("test_cheap", 1.0, 2.0), ("test_dear", 3.0, 40.0), ("test_mid", 20.0, 1.0),
                                           ("test_rebooted", 4.0, None))]
    lines = table([run(10.0, scenario="default"), *tests], [("default", 400, 0)], count=2)
    costliest = lines[len(lines) - 2:]
    assert [line.split()[-1] for line in costliest] == ["test_dear", "test_mid"]
    assert costliest[0].split()[:3] == ["3.0", "40.0", "5.0"]
    # Tests are not playbook runs: the scenario's line counts one run.
    assert lines[1].split()[2] == "1"
    # A test whose container restarted has no container figure, and its controller's still counts.
    rebooted = [line.split() for line in table([run(10.0, scenario="default"), *tests], [("default", 400, 0)], count=4)
                if line.endswith("test_rebooted")]
    assert rebooted and rebooted[0][:2] == ["4.0", "-"]


def test_main_reads_the_files_make_test_leaves(tmp_path, capsys):
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (run(12.5), run(7.0))))
    (tmp_path / "scenarios.tsv").write_text("oracle-mysql 61 0\n")
    main(["run_costs.py", str(tmp_path / "runs.jsonl"), str(tmp_path / "scenarios.tsv")])
    out = capsys.readouterr().out
    assert "oracle-mysql" in out and "1m01s" in out and "12.5" in out
