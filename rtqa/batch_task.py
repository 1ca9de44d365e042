"""One course of a batch, as run on a worker: check it and return its JSON result.

This is the only code that runs in worker processes (local or on a Dask cluster). It gets a
:class:`CourseTask` (plain data, picklable), runs the real ``rtqa check`` pipeline on the course's
files and returns an :class:`Outcome` holding the rendered JSON document (the ``rtqa check``
schema) and, unless HTML is off, the course's self-contained HTML report, so that nothing but
text and numbers travels back. The report is drawn here because its figures need the evaluation
context (dose grids, occupancies), which never leaves the worker; the parent writes both files
(the HTML first), so a worker needs no access to the output folder.
"""

from __future__ import annotations

import html as html_lib
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rtqa import __version__
from rtqa.errors import EXIT_INTERNAL, EXIT_UNREADABLE, InputError, RtqaError

if TYPE_CHECKING:
    from rtqa.model import Case, CheckResult, Course

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
    html: bool = False  # also render the HTML report (rtqa.report.html)
    # How the planner (which scanned the whole root) identified the course: (case uid, case id)
    # of each judged case and of each prior (see :func:`case_uid`). The worker scans only the
    # course's files, where case ids may differ (a label shared with another course of the
    # root gets a UID suffix there only); it picks its course by these UIDs and gives the cases
    # their planned ids. Empty: picked by ``course_id`` (tasks made by hand).
    cases: tuple[tuple[str, str], ...] = ()
    priors: tuple[tuple[str, str], ...] = ()
    # Set: no course can be checked, and this says why (a folder whose DICOM files could not
    # be read, an input file that vanished after planning). The task becomes an error row
    # (exit 3) without a check; ``problem_retry``: stored as failed, retried by the next run.
    problem: str | None = None
    problem_retry: bool = False


class PlanMismatch(Exception):
    """The worker's scan of a course's files did not give the course the planner found. An
    internal fault (never a property of the input): stored as failed, retried next run."""


class InputVanished(InputError):
    """An input file of the course is gone (or unreadable) since planning: retried next run."""


def case_uid(case: Case) -> str:
    """What identifies a case whatever else is scanned with it: its plan's SOP Instance UID,
    else its structure set's, else its dose's, else its files."""
    if case.plan is not None and case.plan.sop_instance_uid:
        return case.plan.sop_instance_uid
    if case.structure_set is not None and case.structure_set.sop_instance_uid:
        return case.structure_set.sop_instance_uid
    if case.dose is not None and case.dose.sop_instance_uids:
        return "dose:" + "|".join(sorted(case.dose.sop_instance_uids))
    return "files:" + "|".join(sorted(os.path.abspath(p) for p in case.input_paths))


def course_identity(
    course: Course,
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(judged cases, priors) of a course as (case uid, case id) pairs: :attr:`CourseTask.cases`
    and :attr:`CourseTask.priors`."""
    return (
        tuple((case_uid(c), c.case_id) for c in course.cases),
        tuple((case_uid(c), c.case_id) for c in course.priors),
    )


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
    html: str | None = None  # the HTML report page (None: not asked for)


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
        html=render(err, "html") if task.html else None,
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
    except InputVanished as exc:
        message = _scrub_message(task, str(exc))
        outcome = error_outcome(task, message, EXIT_UNREADABLE, retry=True)
    except PlanMismatch as exc:
        message = _scrub_message(task, f"internal error: {exc}")
        outcome = error_outcome(task, message, EXIT_INTERNAL, retry=True)
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


def _select(courses: list[Course], task: CourseTask) -> Course:
    """The course the planner planned, among those the course's files gave; its cases (and
    priors) renamed to the planned case ids. :class:`PlanMismatch` when it is not there once."""
    if task.cases:
        want = {uid for uid, _ in task.cases}
        chosen = [c for c in courses if {case_uid(x) for x in c.cases} == want]
    else:
        chosen = [c for c in courses if c.course_id == task.course_id]
    if len(chosen) != 1:
        found = ", ".join(c.course_id for c in courses) or "none"
        raise PlanMismatch(
            f"the course's files gave other courses ({found}) than planned ({task.course_id})"
        )
    course = chosen[0]
    names = dict(task.cases) | dict(task.priors)
    for case in (*course.cases, *course.priors):
        case.case_id = names.get(case_uid(case), case.case_id)
    return course


def _check(task: CourseTask) -> Outcome:
    from rtqa.check import CheckOptions, run_check
    from rtqa.report import render

    if task.problem is not None:
        raise (InputVanished if task.problem_retry else InputError)(task.problem)
    gone = [p for p in task.files if not os.path.isfile(p)]
    if gone:
        more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
        raise InputVanished(f"input file gone since planning: {gone[0]}{more}")
    options = CheckOptions(**task.check_options)
    if task.html:
        options.keep_context = True  # the figures are drawn from it; never serialised
    # only the planned course (picked by its cases' UIDs) is judged
    (result,) = run_check(list(task.files), options, select=lambda found: [_select(found, task)])
    if task.pseudonym_key is not None:
        from rtqa.pseudonym import pseudonymize_result

        result = pseudonymize_result(result, _scrubber(task))
        result.course_id = task.stem  # the course pseudonym, as in the result's file name
    html = None
    if task.html:  # may add a note to the result, so before the JSON
        html = render_report(result, lambda m: _scrub_message(task, m))
    verdict = str(result.verdict.value if hasattr(result.verdict, "value") else result.verdict)
    return Outcome(
        course_id=result.course_id,
        key=task.key,
        stem=task.stem,
        text=render(result, "json"),
        html=html,
        status=verdict,
        exit_code=int(result.exit_code),
    )


def render_report(result: CheckResult, clean: Callable[[str], str] = str) -> str:
    """The HTML report of one checked course (matplotlib is imported here, in the worker).

    A pseudonymised result carries no context (it holds unscrubbed DICOM objects): its report
    has the tables and the DVH curves but no dose slices, timeline or prior panels. If drawing
    the figures fails, the report is rendered without them and a warning note saying why is
    added to ``result`` (so the JSON result says it too): the findings are never lost.
    ``clean`` scrubs the text of an exception before it is written anywhere.
    """
    from rtqa.model import Level, Note
    from rtqa.report.html import render_html

    try:
        return render_html(result)
    except Exception as exc:
        why = clean(f"{type(exc).__name__}: {exc}")
    result.notes.append(Note(Level.WARNING, f"HTML report drawn without figures: {why}"))
    bare = replace(result, context=None, curves={})
    try:
        return render_html(bare)
    except Exception as exc:
        return _plain_page(result.course_id, clean(f"{why}; then {type(exc).__name__}: {exc}"))


def _plain_page(course_id: str, why: str) -> str:
    """A minimal page for a course whose report could not be rendered at all."""
    text = html_lib.escape(f"The HTML report of {course_id} could not be rendered ({why}).")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rtqa: no report</title></head><body><p>{text} "
        "The result JSON of the course holds every finding.</p></body></html>\n"
    )
