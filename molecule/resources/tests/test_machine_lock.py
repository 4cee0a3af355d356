"""The machine-wide lock of the scenarios' tests (flaskstack_testlib), across
real processes as the scenarios' workers take it: a measured window lets
playbook runs start while it waits, up to its patience, and then goes first."""
import multiprocessing
import pathlib
import sys
import time


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import flaskstack_testlib  # noqa: E402

HOLD = 1.5


def hold(kind, files, patience, seconds, ready, times):
    """In a process of its own (a worker): take the lock, note when, hold it."""
    flaskstack_testlib._LOCK_FILE, flaskstack_testlib._TURNSTILE_FILE = files
    flaskstack_testlib.WINDOW_PATIENCE = patience
    asked = time.monotonic()
    with flaskstack_testlib.machine_lock(exclusive=kind == "window"):
        if ready is not None:
            ready.set()
        times[kind] = (asked, time.monotonic())
        time.sleep(seconds)
        times[kind + " released"] = time.monotonic()


def scenario(tmp_path, patience):
    """A playbook run holds the lock; a window asks for it; a second run asks
    a moment later. Returns the times each was granted."""
    context = multiprocessing.get_context("fork")
    files = (tmp_path / "lock", tmp_path / "turnstile")
    with context.Manager() as manager:
        times, ready = manager.dict(), manager.Event()
        first = context.Process(target=hold, args=("run", files, patience, HOLD, ready, times))
        first.start()
        ready.wait(10)
        window = context.Process(target=hold, args=("window", files, patience, 0.5, None, times))
        window.start()
        time.sleep(0.3)
        second = context.Process(target=hold, args=("second run", files, patience, 0.1, None, times))
        second.start()
        for process in (first, window, second):
            process.join(20)
        return dict(times)


def test_a_window_lets_runs_start_while_it_waits_within_its_patience(tmp_path):
    times = scenario(tmp_path, patience=10)
    asked, granted = times["second run"]
    assert granted - asked < 0.5, "a run waited behind a window that was still patient"
    # The window still never overlaps a run: it came after both.
    assert times["window"][1] >= max(times["run released"], times["second run released"])


def test_a_window_out_of_patience_goes_before_runs_that_arrive_after_it(tmp_path):
    times = scenario(tmp_path, patience=0)
    assert times["window"][1] >= times["run released"]
    assert times["second run"][1] >= times["window released"], "a run overtook a window out of patience"
