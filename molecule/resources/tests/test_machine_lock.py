"""The machine-wide lock of the scenarios' tests (flaskstack_testlib), across
real processes as the scenarios' workers take it: a measured window never
overlaps a playbook run, and goes before the runs that arrive after it."""
import multiprocessing
import pathlib
import sys
import time


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import flaskstack_testlib  # noqa: E402

HOLD = 1.5


def hold(kind, files, seconds, ready, times):
    """In a process of its own (a worker): take the lock, note when, hold it."""
    flaskstack_testlib._LOCK_FILE, flaskstack_testlib._TURNSTILE_FILE = files
    asked = time.monotonic()
    with flaskstack_testlib.machine_lock(exclusive=kind == "window"):
        if ready is not None:
            ready.set()
        times[kind] = (asked, time.monotonic())
        time.sleep(seconds)
        times[kind + " released"] = time.monotonic()


def scenario(tmp_path):
    """A playbook run holds the lock; a window asks for it; a second run asks
    a moment later. Returns the times each was granted."""
    context = multiprocessing.get_context("fork")
    files = (tmp_path / "lock", tmp_path / "turnstile")
    with context.Manager() as manager:
        times, ready = manager.dict(), manager.Event()
        first = context.Process(target=hold, args=("run", files, HOLD, ready, times))
        first.start()
        ready.wait(10)
        window = context.Process(target=hold, args=("window", files, 0.5, None, times))
        window.start()
        time.sleep(0.3)
        second = context.Process(target=hold, args=("second run", files, 0.1, None, times))
        second.start()
        for process in (first, window, second):
            process.join(20)
        return dict(times)


def test_a_waiting_window_goes_before_runs_that_arrive_after_it_and_overlaps_none(tmp_path):
    times = scenario(tmp_path)
    assert times["window"][1] >= times["run released"], "a window overlapped a run"
    assert times["second run"][1] >= times["window released"], "a run overtook a waiting window"
