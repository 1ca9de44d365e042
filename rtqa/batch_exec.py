"""Executors that run :func:`rtqa.batch_task.compute_course` for many courses.

Both executors have one method, ``run(tasks) -> Iterator[Outcome]``, yielding each course's
outcome as soon as it is done (in completion order); a course whose worker dies or runs past the
time limit yields an ``error`` outcome and the others go on.

* :class:`LocalExecutor` (default): one fresh process per course, at most ``workers`` at a time,
  forked from a ``forkserver`` that has already imported the pipeline (so a course starts in
  milliseconds). A process per course rather than a long-lived pool because (a) a time limit can
  be enforced by killing exactly that course's process, where a ``ProcessPoolExecutor`` cannot
  cancel a running task and would have to be torn down with every innocent course in flight;
  (b) a crash (``os._exit``, a segfault in a C extension, the OOM killer) takes down only that
  course, with no ``BrokenProcessPool`` to recover from; (c) memory is returned after every
  course, so a long batch does not grow. The cost, a fork per course, is small beside a check.
* :class:`DaskExecutor`: ``client.submit`` / ``as_completed`` on a ``distributed`` cluster (an
  existing scheduler, or a ``LocalCluster``). Each task runs the course in a child interpreter
  (``python -m rtqa.batch_exec``) on the worker, so the same guarantees hold there: the time
  limit kills the child, and a crashing course never kills the Dask worker. A batch left before
  the end (Ctrl-C) sets a stop event that its running tasks poll: they kill their children, as
  ``future.cancel`` cannot stop a running task.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from rtqa.batch_task import (
    TEST_HOOK_ENV,
    CourseTask,
    Outcome,
    compute_course,
    error_outcome,
)
from rtqa.errors import EXIT_INTERNAL, EXIT_UNREADABLE, UsageError

_POLL_S = 0.5


def default_workers() -> int:
    """Cores this process may run on (``sched_getaffinity`` where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"the worker process died from {name}{hint}"
    return f"the worker process exited with status {code} before returning a result"


def as_reported(outcome: Outcome) -> Outcome:
    """The outcome as the batch reports it: a course checked although its input could not be
    read (exit code 3, verdict e.g. ``not_evaluable``) is an ``error``, as in the summary, with
    the reasons (its error notes, else its worst finding) as the error text. Both executors
    yield outcomes through it, so the progress line and ``runs.jsonl`` say ``error`` where
    summary.csv does."""
    if outcome.status == "error" or outcome.exit_code != EXIT_UNREADABLE:
        return outcome
    outcome.status = "error"
    if not outcome.error:
        from rtqa.batch import worst_finding

        try:
            doc = json.loads(outcome.text)
            reasons = [n["message"] for n in doc.get("notes", []) if n.get("level") == "error"]
            why = "; ".join(dict.fromkeys(reasons)) or worst_finding(doc)
        except (ValueError, TypeError, KeyError, AttributeError):
            why = ""
        outcome.error = why or "the input could not be read"
    return outcome


# --------------------------------------------------------------------------------------------
# Local: a process per course
# --------------------------------------------------------------------------------------------


def _child(task: CourseTask, conn: Connection, test_hook: str | None) -> None:
    # children fork from a server started once: hand over the parent's test hook as it is now
    if test_hook:
        os.environ[TEST_HOOK_ENV] = test_hook
    else:
        os.environ.pop(TEST_HOOK_ENV, None)
    try:
        outcome = compute_course(task)
        conn.send(outcome)
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


@dataclass
class _Running:
    task: CourseTask
    process: multiprocessing.process.BaseProcess
    conn: Connection
    started: float
    outcome: Outcome | None = None


class LocalExecutor:
    """Courses in separate processes on this machine, ``workers`` at a time."""

    name = "local"

    def __init__(self, workers: int | None = None, timeout: float | None = None):
        self.workers = workers or default_workers()
        self.timeout = timeout
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            self._ctx = multiprocessing.get_context("forkserver")
            self._ctx.set_forkserver_preload(["rtqa.batch_task", "rtqa.check", "rtqa.report"])
        else:
            self._ctx = multiprocessing.get_context("spawn")

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"

    def run(self, tasks: Iterable[CourseTask]) -> Iterator[Outcome]:
        pending = deque(tasks)
        running: list[_Running] = []
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    running.append(self._start(pending.popleft()))
                yield from self._reap(running)
        finally:
            for item in running:
                if item.process.is_alive():
                    item.process.kill()
                item.process.join(5)
                item.conn.close()

    def _start(self, task: CourseTask) -> _Running:
        recv, send = self._ctx.Pipe(duplex=False)
        hook = os.environ.get(TEST_HOOK_ENV)
        process = self._ctx.Process(target=_child, args=(task, send, hook), daemon=True)
        process.start()
        send.close()
        return _Running(task, process, recv, time.monotonic())

    def _reap(self, running: list[_Running]) -> Iterator[Outcome]:
        now = time.monotonic()
        wait_s = _POLL_S
        if self.timeout is not None:
            left = min(item.started + self.timeout - now for item in running)
            wait_s = max(0.0, min(wait_s, left))
        waitables = [item.conn for item in running if item.outcome is None]
        waitables += [item.process.sentinel for item in running]
        wait(waitables, timeout=wait_s)
        now = time.monotonic()
        for item in list(running):
            if item.outcome is None and item.conn.poll():
                try:
                    item.outcome = item.conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    item.outcome = None
                    if item.process.is_alive():
                        continue
            if not item.process.is_alive() or item.outcome is not None:
                item.process.join(5)
                if item.process.is_alive():  # sent its result but does not exit
                    item.process.kill()
                    item.process.join()
                running.remove(item)
                item.conn.close()
                if item.outcome is not None:
                    yield as_reported(item.outcome)
                else:
                    yield error_outcome(
                        item.task,
                        _describe_exit(item.process.exitcode),
                        EXIT_INTERNAL,
                        retry=True,
                        runtime_s=now - item.started,
                    )
            elif self.timeout is not None and now - item.started >= self.timeout:
                item.process.kill()
                item.process.join()
                running.remove(item)
                item.conn.close()
                yield error_outcome(
                    item.task,
                    f"stopped after the time limit of {self.timeout:g} s",
                    EXIT_INTERNAL,
                    retry=True,
                    runtime_s=now - item.started,
                )

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Dask distributed
# --------------------------------------------------------------------------------------------

DASK_MISSING = (
    "Dask is not installed: --scheduler and --local-cluster need the optional extra "
    "(pip install 'rtqa[dask]')"
)


def dask_setup(worker: object) -> None:
    """Dask preload hook of the LocalCluster's worker processes: ignore SIGINT.

    Ctrl-C reaches every process of the terminal's process group. The batch process handles it
    (summary, then the cluster stopped); workers that raised KeyboardInterrupt themselves would
    print tracebacks as they die. Courses still end on Ctrl-C (:func:`_subprocess_main`)."""
    with suppress(ValueError):  # not the worker process's main thread: leave it
        signal.signal(signal.SIGINT, signal.SIG_IGN)


#: The error of a course stopped because its batch was interrupted (never stored: the batch
#: has stopped reading outcomes; ``retry`` in any case).
STOPPED_BY_INTERRUPT = "stopped: the batch was interrupted"


def _stop_requested(name: str | None) -> Callable[[], bool]:
    """A check of the batch's stop event ``name`` (a ``distributed.Event``), or of nothing when
    there is no name, Dask is not installed or this is not a Dask worker. Never raises: a check
    that fails (the scheduler briefly out of reach) reads as "go on"."""
    if name is None:
        return lambda: False
    try:
        import distributed

        distributed.get_worker()
        event = distributed.Event(name)
    except (ImportError, ValueError):  # no Dask, or not on a worker
        return lambda: False

    def check() -> bool:
        try:
            return bool(event.is_set())
        except Exception:
            return False

    return check


def run_in_subprocess(
    task: CourseTask, timeout: float | None = None, stop_event: str | None = None
) -> Outcome:
    """Check one course in a child interpreter (``python -m rtqa.batch_exec``): a crash or the
    time limit ends only the child. Runs on Dask workers; needs nothing but rtqa installed.

    ``stop_event``: name of a ``distributed.Event`` the batch sets when it is interrupted;
    on a Dask worker it is polled every ``_POLL_S`` s and, once set, the child is killed."""
    start = time.monotonic()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    stopped = _stop_requested(stop_event)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtqa.batch_exec", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    feed: bytes | None = pickle.dumps(task)
    why = None
    try:
        while True:
            wait_s = _POLL_S
            if timeout is not None:
                wait_s = max(0.0, min(wait_s, start + timeout - time.monotonic()))
            try:
                stdout, _ = proc.communicate(feed, timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                feed = None  # sent once; communicate goes on writing what is left
            if timeout is not None and time.monotonic() - start >= timeout:
                why = f"stopped after the time limit of {timeout:g} s"
            elif stopped():
                why = STOPPED_BY_INTERRUPT
            if why is not None:
                break
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate()
    if why is not None:
        return error_outcome(
            task,
            why,
            EXIT_INTERNAL,
            retry=True,
            runtime_s=time.monotonic() - start,
            worker=worker,
        )
    if proc.returncode == 0:
        try:
            return pickle.loads(stdout)
        except Exception:  # a garbled answer: treat as a crash
            pass
    return error_outcome(
        task,
        _describe_exit(proc.returncode),
        EXIT_INTERNAL,
        retry=True,
        runtime_s=time.monotonic() - start,
        worker=worker,
    )


class DaskExecutor:
    """Courses as Dask tasks: an existing scheduler (``address``) or a LocalCluster."""

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        timeout: float | None = None,
    ):
        try:
            import distributed
        except ImportError:
            raise UsageError(DASK_MISSING) from None
        self.timeout = timeout
        self._unfinished: set[str] = set()  # stop events of runs not yet ended
        self._cluster = None
        if address is None:
            self._cluster = distributed.LocalCluster(
                n_workers=workers or default_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
                silence_logs=logging.ERROR,
                preload=[__name__],  # dask_setup, in every worker process
            )
            address = self._cluster.scheduler_address
        try:
            self.client = distributed.Client(address, timeout="20s")
        except OSError as exc:
            self.close()
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.address = address

    def describe(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {}))
        where = "local Dask cluster" if self._cluster is not None else f"Dask at {self.address}"
        return f"{where} with {workers} worker{'s' if workers != 1 else ''}"

    def run(self, tasks: Iterable[CourseTask]) -> Iterator[Outcome]:
        """Submit every task, yield outcomes as they come. Left before the end (Ctrl-C, SIGTERM,
        an error of the caller): the courses running on workers are stopped (:meth:`_stop`)
        and the queued ones cancelled."""
        from distributed import as_completed

        stop_event = f"rtqa-stop-{uuid.uuid4().hex}"
        self._unfinished.add(stop_event)
        by_future = {}
        finished = False
        try:
            for task in tasks:
                future = self.client.submit(
                    run_in_subprocess,
                    task,
                    self.timeout,
                    stop_event,
                    pure=False,
                    key=f"rtqa-{task.key[:32]}",
                )
                by_future[future] = task
            for future in as_completed(by_future):
                task = by_future[future]
                try:
                    outcome = as_reported(future.result())
                except Exception as exc:  # e.g. KilledWorker after repeated worker loss
                    yield error_outcome(
                        task,
                        f"the Dask task failed: {type(exc).__name__}: {exc}",
                        EXIT_INTERNAL,
                        retry=True,
                    )
                else:
                    yield outcome
                future.release()
            finished = True
        finally:
            self._unfinished.discard(stop_event)
            if not finished:
                self._stop(stop_event)
            for future in by_future:
                if not future.done():
                    future.cancel()

    def _stop(self, name: str) -> None:
        """Set the stop event ``name``: each running course of this batch kills its child
        interpreter within ``_POLL_S`` s (``future.cancel`` cannot stop a running task)."""
        from distributed import Event

        if self.client.status != "running":  # the scheduler is gone: nothing to tell
            return
        with suppress(Exception):
            Event(name, client=self.client).set()

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            for name in list(self._unfinished):  # a run abandoned unclosed: stop its courses
                self._stop(name)
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def make_executor(
    *,
    workers: int | None = None,
    timeout: float | None = None,
    scheduler: str | None = None,
    local_cluster: bool = False,
) -> LocalExecutor | DaskExecutor:
    """The executor for the command-line choice (local processes unless Dask is asked for)."""
    if scheduler and local_cluster:
        raise UsageError("--scheduler and --local-cluster exclude each other")
    if scheduler or local_cluster:
        return DaskExecutor(scheduler, workers=workers, timeout=timeout)
    return LocalExecutor(workers, timeout)


def _exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """End this process when its parent ``parent`` (the Dask worker's pid, passed by it) is
    gone: a worker stopped or killed mid-course leaves no course running on, even one killed
    while this interpreter was still starting (its own parent pid would then already be the
    one it was handed over to)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(EXIT_INTERNAL)

    threading.Thread(target=watch, daemon=True, name="rtqa-parent-watch").start()


def _subprocess_main() -> int:
    """``python -m rtqa.batch_exec [PARENT_PID]``: read a pickled task on stdin, write the outcome
    on stdout; end at once when the process PARENT_PID (default: the current parent) is gone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends a course (the worker ignores it)
    _exit_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    task = pickle.loads(sys.stdin.buffer.read())
    outcome = compute_course(task)
    sys.stdout.buffer.write(pickle.dumps(outcome))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_subprocess_main())
