"""The machine-wide lock of the scenarios' tests (flaskstack_testlib), across
real processes as the scenarios' workers take it: a measured window never
overlaps a playbook run, and goes before the runs that arrive after it."""
import fcntl
import multiprocessing
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import flaskstack_testlib  # noqa: E402


def hold(kind, files, times, release=None):
    """In a process of its own (a worker): ask for the lock, note when it was
    asked, granted and let go; hold it until `release` is set, if given."""
    flaskstack_testlib._LOCK_FILE, flaskstack_testlib._TURNSTILE_FILE = files
    times[kind + " asked"] = time.monotonic()
    with flaskstack_testlib.machine_lock(exclusive=kind == "window"):
        times[kind] = time.monotonic()
        if release is not None:
            release.wait(20)
        times[kind + " released"] = time.monotonic()


def turnstile_closed(path):
    """Whether another process holds the turnstile (a window waiting for the lock)."""
    with open(path, "a") as turnstile:
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        return False


def until(condition, failure, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def test_a_waiting_window_goes_before_runs_that_arrive_after_it_and_overlaps_none(tmp_path):
    """A playbook run holds the lock; a window asks for it; a second run asks
    while the window waits; then the first run lets go."""
    context = multiprocessing.get_context("fork")
    files = (tmp_path / "lock", tmp_path / "turnstile")
    with context.Manager() as manager:
        times, release = manager.dict(), manager.Event()
        first = context.Process(target=hold, args=("run", files, times, release))
        first.start()
        until(lambda: "run" in times, "the first run never got the lock")
        window = context.Process(target=hold, args=("window", files, times))
        window.start()
        until(lambda: "window asked" in times, "the window never asked")
        until(lambda: turnstile_closed(files[1]), "a waiting window left the turnstile open for runs to overtake it")
        second = context.Process(target=hold, args=("second run", files, times))
        second.start()
        # The second run has asked (or, were the rule broken, even got the lock).
        until(lambda: "second run asked" in times, "the second run never asked")
        release.set()
        for process in (first, window, second):
            process.join(20)
        times = dict(times)
    assert times["window"] >= times["run released"], "a window overlapped a run"
    assert times["second run"] >= times["window released"], "a run overtook a waiting window"
