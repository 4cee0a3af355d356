"""The machine-wide lock of the scenarios' tests (flaskstack_testlib), across
real processes as the scenarios' workers take it: a measured window never
overlaps a playbook run, and goes before the runs that arrive after it; a run
that holds no window back waits out a window in force and nothing else."""
import fcntl
import multiprocessing
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import flaskstack_testlib  # noqa: E402


def hold(kind, files, times, release=None, hold_windows_back=True):
    """In a process of its own (a worker): ask for the lock, note when it was
    asked, granted and let go; hold it until `release` is set, if given."""
    flaskstack_testlib._LOCK_FILE, flaskstack_testlib._TURNSTILE_FILE = files
    times[kind + " asked"] = time.monotonic()
    with flaskstack_testlib.machine_lock(exclusive=kind == "window", hold_windows_back=hold_windows_back):
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


def blocked_on_a_lock(pid):
    """Whether the process waits for a lock (the kernel lists its request as blocked)."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in pathlib.Path("/proc/locks").read_text().splitlines())


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


def test_a_run_that_holds_no_window_back_waits_out_a_window_in_force_and_nothing_else(tmp_path):
    """A run holds the lock; a window waits for it; a run that holds no window
    back starts meanwhile, and the window does not wait for it; once the window
    holds the lock, such a run waits until the window ends."""
    context = multiprocessing.get_context("fork")
    files = (tmp_path / "lock", tmp_path / "turnstile")
    with context.Manager() as manager:
        times, release_run, release_outside, release_window = (manager.dict(), manager.Event(), manager.Event(),
                                                               manager.Event())
        run = context.Process(target=hold, args=("run", files, times, release_run))
        run.start()
        until(lambda: "run" in times, "the run never got the lock")
        window = context.Process(target=hold, args=("window", files, times, release_window))
        window.start()
        until(lambda: turnstile_closed(files[1]), "the window never waited for the lock")
        outside = context.Process(target=hold, args=("outside run", files, times, release_outside, False))
        outside.start()
        until(lambda: "outside run" in times, "a run holding no window back queued behind a waiting window")
        release_run.set()
        until(lambda: "window" in times, "the window waited for a run that holds no window back")
        late = context.Process(target=hold, args=("late run", files, times, None, False))
        late.start()
        until(lambda: "late run" in times or blocked_on_a_lock(late.pid), "the late run never asked")
        release_window.set()
        release_outside.set()
        for process in (run, window, outside, late):
            process.join(20)
        times = dict(times)
    assert times["outside run"] < times["run released"], "a run holding no window back waited for a waiting window"
    assert times["window"] < times["outside run released"], "the window waited for a run that holds no window back"
    assert times["late run"] >= times["window released"], "a run started inside a window in force"
