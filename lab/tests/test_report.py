import importlib.util
import json
import pathlib
import sys

# lab/report.py, by its path (bench/ has a report.py of its own).
_SPEC = importlib.util.spec_from_file_location("lab_report", pathlib.Path(__file__).resolve().parents[1] / "report.py")
lab_report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(lab_report)
figures_of, main = lab_report.figures_of, lab_report.main


def samples(*rows):
    """(t, mysql_sessions, haproxy_queue, workers, workers_answered) rows."""
    return [{"t": t, "mysql_sessions": m, "haproxy_sessions": m, "haproxy_queue": q, "limit": 3,
             "workers": w, "workers_answered": a} for t, m, q, w, a in rows]


def burst(peak_sessions=3, qmax=3, statuses=(200,) * 6):
    return {"mode": "burst", "clients": 6, "limit": 3, "sleep": 2, "ports": [8000, 8001], "started": 0,
            "samples": samples((0, 2, 0, 1, 1), (0.5, peak_sessions, 3, 1, 1), (2.5, 3, 2, 1, 1), (8, 2, 0, 1, 1)),
            "requests": [{"client": i, "start": 0.4, "end": 2.4 + 2 * (i // 3), "status": status}
                         for i, status in enumerate(statuses)],
            "haproxy_smax": 3, "haproxy_qmax": qmax, "reload_at": None, "old_worker_gone_at": None}


def change(after=2):
    """3 -> 2: reloaded at 5 s, old worker gone at 10 s; `after` sessions at 12.6 s."""
    return {"mode": "sustain", "clients": 6, "sleep": 2, "from_limit": 3, "to_limit": 2, "ports": [8000], "started": 0,
            "samples": samples((0, 3, 3, 1, 1), (5, 3, 3, 2, 1), (7, 4, 1, 2, 1), (10, 2, 2, 1, 1),
                               (11, 3, 1, 1, 1), (12.6, after, 1, 1, 1), (14, 2, 0, 1, 1)),
            "requests": [{"client": 0, "start": 0, "end": 2, "status": 200}],
            "haproxy_smax": 2, "haproxy_qmax": 2, "limit": 2, "reload_at": 5, "old_worker_gone_at": 10}


def test_a_burst_agrees_when_mysql_peaks_at_the_limit_and_the_queue_at_the_excess():
    figures = figures_of(burst())
    assert (figures["peak_mysql_sessions"], figures["excess"], figures["haproxy_qmax"]) == (3, 3, 3)
    assert figures["longest_wait"] == 2.0 and figures["median_wait"] == 1.0
    assert figures["agrees"]


def test_a_burst_disagrees_past_the_limit_with_a_short_queue_or_a_failure():
    assert not figures_of(burst(peak_sessions=4))["agrees"]
    assert not figures_of(burst(qmax=2))["agrees"]
    assert not figures_of(burst(statuses=(200,) * 5 + (503,)))["agrees"]


def test_a_change_counts_the_old_workers_sessions_until_it_left():
    figures = figures_of(change())
    assert (figures["peak_mysql_before"], figures["peak_mysql_draining"], figures["drain_seconds"]) == (3, 4, 5)
    # A session the old worker closed ends in MySQL once its query has: 3 at 11 s is
    # within the sleep (+0.5 s) after it left, and not counted against the new limit.
    assert figures["peak_mysql_after"] == 2 and figures["old_worker_silent"]  # both draining samples lack it
    assert figures["agrees"]


def test_an_old_worker_missed_once_as_it_exits_is_not_silent():
    run = change()
    run["samples"][1]["workers_answered"] = 2
    assert not figures_of(run)["old_worker_silent"]


def test_a_change_disagrees_when_mysql_stays_above_the_new_limit():
    assert not figures_of(change(after=3))["agrees"]


def test_the_report_and_the_picture_come_from_the_measurements(tmp_path, monkeypatch):
    measurements = tmp_path / "lab.json"
    measurements.write_text(json.dumps({"host": "stack1", "runs": [burst(), change(), burst()]}))
    monkeypatch.setattr(sys, "argv", ["report.py", str(measurements), "--markdown", str(tmp_path / "lab.md"),
                                      "--picture", str(tmp_path / "lab.png")])
    main()
    report = (tmp_path / "lab.md").read_text()
    assert "| 3 | 6 | 3 | 3 | 3 | 3 | 1.0 s / 2.0 s |" in report and "up to 4 sessions for 5 s" in report
    assert (tmp_path / "lab.png").read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads(measurements.read_text())["figures"]) == 3
