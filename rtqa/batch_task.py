"""One course of a batch, as run on a worker: check it and return its JSON result.

This is the only code that runs in worker processes (local or on a Dask cluster). It gets a
:class:`CourseTask` (plain data, picklable), runs the real ``rtqa check`` pipeline on the course's
files and returns an :class:`Outcome` holding the rendered JSON document (the ``rtqa check``
schema), so that nothing but text and numbers travels back.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rtqa import __version__
from rtqa.errors import EXIT_INTERNAL, EXIT_UNREADABLE, RtqaError

#: Test-only fault injection: ``crash:<course id>`` makes that course's worker call
#: ``os._exit(70)``; ``hang:<course id>`` makes it sleep for an hour. Never set in production.
TEST_HOOK_ENV = "RTQA_BATCH_TEST_HOOK"


@dataclass(frozen=True)
class CourseTask:
    """Everything a worker needs to check one course (paths must be readable by the worker)."""

    course_id: str
    files: tuple[str, ...]
    key: str  # content key (SHA-256 hex), see rtqa.batch_store.course_key
    stem: str  # result file name stem
    check_options: dict = field(default_factory=dict)  # CheckOptions fields
    root: str | None = None
    pseudonym_key: bytes | None = None  # secret; set only with --pseudonymize


@dataclass
class Outcome:
    """What came back for one course: the JSON text, or why there is none.

    ``retry`` is True for failures that may not recur (the worker died, the course ran past the
    time limit): such results are stored as failed and retried by the next run.
    """

    course_id: str
    key: str
    stem: str
    text: str
    status: str  # pass | not_evaluable | minor | major | error
    exit_code: int
    retry: bool = False
    error: str | None = None
    runtime_s: float = 0.0
    peak_rss_mb: float | None = None
    worker: str = ""


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _test_hook(course_id: str) -> None:
    for item in os.environ.get(TEST_HOOK_ENV, "").split(","):
        action, _, target = item.partition(":")
        if target != course_id:
            continue
        if action == "crash":
            os._exit(70)
        if action == "hang":
            time.sleep(3600)


def error_outcome(
    task: CourseTask,
    message: str,
    exit_code: int = EXIT_INTERNAL,
    *,
    retry: bool = False,
    patient_id: str = "",
    runtime_s: float = 0.0,
    worker: str = "",
) -> Outcome:
    """An ``error`` result (:class:`~rtqa.report.CourseError`) rendered as JSON."""
    from rtqa.report import CourseError, render

    course_id = task.course_id
    if task.pseudonym_key is not None:
        course_id = task.stem  # the course pseudonym: no identifier survives in an error
    err = CourseError(
        course_id=course_id,
        message=message,
        exit_code=exit_code,
        patient_id=patient_id,
        rtqa_version=__version__,
        created=datetime.now(UTC),
    )
    return Outcome(
        course_id=course_id,
        key=task.key,
        stem=task.stem,
        text=render(err, "json"),
        status="error",
        exit_code=exit_code,
        retry=retry,
        error=message,
        runtime_s=runtime_s,
        worker=worker,
    )


def compute_course(task: CourseTask) -> Outcome:
    """Check one course with the real pipeline; never raises for a failure of the course."""
    start = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    _test_hook(task.course_id)
    try:
        outcome = _check(task)
    except RtqaError as exc:
        message = _scrub_message(task, str(exc))
        outcome = error_outcome(task, message, exc.exit_code or EXIT_UNREADABLE)
    except MemoryError:
        outcome = error_outcome(task, "out of memory while checking this course", retry=True)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" at {os.path.basename(where.filename)}:{where.lineno}" if where else ""
        message = _scrub_message(task, f"internal error: {type(exc).__name__}: {exc}{at}")
        outcome = error_outcome(task, message, EXIT_INTERNAL)
    outcome.runtime_s = time.perf_counter() - start
    outcome.peak_rss_mb = _peak_rss_mb()
    outcome.worker = worker
    return outcome


def _scrubber(task: CourseTask, patient_id: str = ""):
    from rtqa.pseudonym import Pseudonymizer, collect_identifiers

    psn = Pseudonymizer(task.pseudonym_key or b"")
    ids = collect_identifiers(task.files, task.root)
    return psn.scrubber(ids, task.stem)


def _scrub_message(task: CourseTask, message: str) -> str:
    if task.pseudonym_key is None:
        return message
    return _scrubber(task).text(message) or ""


def _check(task: CourseTask) -> Outcome:
    from rtqa.check import CheckOptions, run_check
    from rtqa.report import render

    options = CheckOptions(**task.check_options)
    results = run_check(list(task.files), options)
    chosen = [r for r in results if r.course_id == task.course_id]
    if len(chosen) != 1:
        found = ", ".join(r.course_id for r in results) or "none"
        raise RtqaError(
            f"the course's files gave other courses ({found}) than planned ({task.course_id})"
        )
    result = chosen[0]
    if task.pseudonym_key is not None:
        from rtqa.pseudonym import pseudonymize_result

        result = pseudonymize_result(result, _scrubber(task))
        result.course_id = task.stem  # the course pseudonym, as in the result's file name
    verdict = str(result.verdict.value if hasattr(result.verdict, "value") else result.verdict)
    return Outcome(
        course_id=result.course_id,
        key=task.key,
        stem=task.stem,
        text=render(result, "json"),
        status=verdict,
        exit_code=int(result.exit_code),
    )
