"""``rtqa batch``: check every course under a folder, resumably; one failure never stops the rest.

Flow: plan the courses (:func:`scan_plan`: one scan of the root, the same grouping and course
ids as ``rtqa check`` on it; each course carries the UIDs of its cases, by which its worker, which
scans only the course's files, finds it again) ->
key each course by the SHA-256 of its input files, the protocol file and the rtqa version ->
skip keys that are done (unless ``force``) -> run the rest on an executor (local processes or
Dask, :mod:`rtqa.batch_exec`) writing each result atomically as it arrives -> rebuild
``summary.csv`` / ``summary.json`` / ``index.html`` from the result files (also after an
interruption).

Output folder::

    OUT/results/<course>--<key>.json         one rtqa-check JSON result per course (done)
    OUT/results/<course>--<key>.failed.json  worker died / time limit: shown, retried next run
    OUT/results/<course>--<key>.html         the course's self-contained HTML report (or a
                                             page saying why there is none); not with --no-html
    OUT/summary.csv, OUT/summary.json        one row per course, rebuilt from the results
    OUT/index.html                           the summary table, sortable, filterable by verdict,
                                             each row linking to its course's report
    OUT/runs.jsonl                           runtime and peak memory of each computed course
    OUT/.plan-cache.json                     planned courses and file digests (by size, mtime;
                                             not written when pseudonymising: it holds paths)

A course is done when its JSON result exists and, with HTML on (the default), its HTML report
too. The report is drawn by the worker from the evaluation context (dose grids, occupancies),
which only a check produces: a course checked without HTML (``--no-html``, or a result from an
older version) is therefore checked again by the next run with HTML on, and counted as checked.
The parent writes the report before the JSON, so a JSON result without its report can only come
from such a run. When pseudonymising, reports hold the tables and DVH curves but no dose
slices, timeline or prior panels (those are drawn from DICOM objects that are not scrubbed).

A folder under the root whose files gave no course is never dropped silently: if a file there
looks like DICOM (``.dcm`` or the DICM preamble) and could not be read, the folder is an
``error`` row (exit 3) naming the files and why; otherwise (no DICOM files, or only DICOM that
belongs to no course, e.g. an unlinked image series) ``summary.json`` has a note on it
(``notes``). An input file gone between planning and checking makes its course an error row that
is retried by the next run; so does a course its worker cannot find again (an internal error).

Exit code: 1 if a course deviates, else 3 if a course could not be read or run, else 4 if a
course is not fully evaluable, else 0 (2 usage, 130 interrupted).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rtqa import __version__
from rtqa.batch_progress import Progress
from rtqa.batch_store import (
    DONE_SUFFIX,
    FAILED_SUFFIX,
    KEY_CHARS,
    ResultStore,
    StoredResult,
    atomic_write_text,
    file_digest,
    key_from_digests,
)
from rtqa.batch_task import CourseTask, Outcome
from rtqa.errors import (
    EXIT_DEVIATION,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_EVALUABLE,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNREADABLE,
    Terminated,
    UsageError,
)

SUMMARY_SCHEMA = "rtqa-batch-summary/1"
PLAN_CACHE = ".plan-cache.json"
RUN_LOG = "runs.jsonl"
EXTRA_FORMATS = {"csv": "findings.csv", "junit": "junit.xml"}

SUMMARY_COLUMNS = (
    "course_id",
    "patient_id",
    "plans",
    "fractions",
    "prescription_gy",
    "status",
    "exit_code",
    "major",
    "minor",
    "not_evaluable",
    "pass",
    "info",
    "worst_finding",
    "runtime_s",
    "error",
    "result_file",
    "report_file",
)


@dataclass
class BatchOptions:
    """Settings of one ``rtqa batch`` run."""

    root: str
    out: str
    protocol: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    local_cluster: bool = False
    force: bool = False
    timeout: float | None = None
    key_file: str | None = None  # set: pseudonymise with this key
    quiet: bool = False
    format_extra: tuple[str, ...] = ()
    check_options: dict[str, Any] = field(default_factory=dict)  # other CheckOptions fields
    progress_mode: str | None = None  # bar | log | quiet; None: bar on a terminal, else log
    html: bool = True  # write each course's HTML report (the index is always written)


@dataclass
class BatchReport:
    """What a batch run did and found."""

    planned: int
    skipped: int
    computed: int
    rows: list[dict[str, Any]]
    exit_code: int
    out_dir: Path
    summary_csv: Path
    summary_json: Path
    index_html: Path | None = None


# --------------------------------------------------------------------------------------------
# Planning: courses, content keys, the cache that makes a rerun cheap
# --------------------------------------------------------------------------------------------


def _tree_state(root: Path, exclude: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file under ``root`` except under ``exclude`` (compared by
    path components: ``--out rc/c`` leaves ``rc/cases`` in)."""
    state = []
    excluded = exclude.resolve()
    for folder, dirs, files in os.walk(root):
        here = Path(folder).resolve()
        if here == excluded or excluded in here.parents:
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            state.append((path, st.st_size, st.st_mtime_ns))
    return state


def _digest_cached(path: str, cache: dict[str, list], fresh: dict[str, list]) -> str:
    """SHA-256 of one file, reused from ``cache`` when its size and mtime are unchanged;
    OSError when the file is gone or unreadable."""
    st = os.stat(path)
    hit = cache.get(path)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        digest = hit[2]
    else:
        digest = file_digest(path)
    fresh[path] = [st.st_size, st.st_mtime_ns, digest]
    return digest


@dataclass
class PlannedCourse:
    """One course as planned (or a folder that gave none: ``problem`` says why)."""

    course_id: str
    files: list[str]
    cases: list[list[str]] = field(default_factory=list)  # [case uid, case id] judged
    priors: list[list[str]] = field(default_factory=list)  # [case uid, case id] prior
    problem: str | None = None

    def __iter__(self):  # unpacks as (course_id, files), as plans were before
        return iter((self.course_id, self.files))


@dataclass
class BatchPlan:
    """What planning found under the root: the courses (and unreadable folders, as error
    courses), and notes on folders that hold files but no course and no DICOM problem."""

    courses: list[PlannedCourse]
    notes: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.courses)

    def __len__(self) -> int:
        return len(self.courses)


CACHE_SCHEMA = 2
_PROBLEMS_SHOWN = 5


def plan(options: BatchOptions, protocol_file: Path, *, cache: bool = True) -> BatchPlan:
    """The courses under the root and their files; reuses the cached plan when no file under
    the root changed (size and modification time) and the options are the same. ``cache``
    False (pseudonymised runs: the cache holds input paths) neither reads nor writes it."""
    out = Path(options.out)
    cache_path = out / PLAN_CACHE
    state = _tree_state(Path(options.root), out)
    fingerprint = key_from_digests(
        [f"{p}\x00{s}\x00{m}" for p, s, m in state],
        file_digest(protocol_file),
        __version__,
        _options_text(options),
    )
    old = _read_json(cache_path) if cache else {}
    if (
        not options.force
        and old.get("schema") == CACHE_SCHEMA
        and old.get("fingerprint") == fingerprint
    ):
        with contextlib.suppress(KeyError, TypeError):
            return BatchPlan(
                [PlannedCourse(**c) for c in old["courses"]], [str(n) for n in old["notes"]]
            )
    found = scan_plan(options, protocol_file, state)
    if not cache:
        return found
    cache_doc = {
        "schema": CACHE_SCHEMA,
        "fingerprint": fingerprint,
        "courses": [dataclasses.asdict(c) for c in found.courses],
        "notes": found.notes,
        "digests": old.get("digests", {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_path, json.dumps(cache_doc))
    return found


def scan_plan(
    options: BatchOptions, protocol_file: Path, state: list[tuple[str, int, int]]
) -> BatchPlan:
    """Scan the root once and group it as ``rtqa check`` does (:func:`rtqa.check._courses`):
    each course with its files and the UIDs of its cases (so a worker, which scans only the
    course's files, finds the same course), plus every folder that gave no course."""
    from rtqa.batch_task import course_identity
    from rtqa.check import CheckOptions, _course_files, _courses, load_protocol_for
    from rtqa.dicom.scan import scan
    from rtqa.errors import InputError

    check_opts = CheckOptions(**{**options.check_options, "protocol": str(protocol_file)})
    protocol, _ = load_protocol_for(check_opts)
    nothing: InputError | None = None
    try:
        courses, scanned = _courses([options.root], check_opts, protocol)
    except InputError as exc:  # no course under the root: its unreadable folders are reported
        courses, scanned, nothing = [], scan([options.root]), exc
    planned = []
    for course in courses:
        cases, priors = course_identity(course)
        planned.append(
            PlannedCourse(
                course.course_id,
                _course_files(course),
                [list(c) for c in cases],
                [list(c) for c in priors],
            )
        )
    planned = with_unclaimed(planned, state)
    errors, notes = courseless_folders(planned, state, scanned.notes, options.root)
    if nothing is not None and not errors:
        raise nothing  # nothing at all to check (no DICOM files): exit 3, as rtqa check
    return BatchPlan(planned + errors, notes)


def with_unclaimed(courses: list, state: list[tuple[str, int, int]]) -> list:
    """Add to each course the files of its folders that no course claimed (a truncated dose, a
    file that is not DICOM ...): the check then reports why they were unusable, and the course's
    key changes when they are repaired. Takes and gives (course id, files) pairs or
    :class:`PlannedCourse` items."""
    claimed = {os.path.abspath(f) for _, files in courses for f in files}
    unclaimed: dict[str, list[str]] = {}
    for path, _, _ in state:
        if os.path.abspath(path) not in claimed:
            unclaimed.setdefault(os.path.dirname(os.path.abspath(path)), []).append(path)
    result = []
    for course in courses:
        course_id, files = course
        folders = dict.fromkeys(os.path.dirname(os.path.abspath(f)) for f in files)
        extra = [p for d in folders for p in unclaimed.get(d, [])]
        if isinstance(course, PlannedCourse):
            result.append(dataclasses.replace(course, files=[*files, *extra]))
        else:
            result.append((course_id, [*files, *extra]))
    return result


def looks_like_dicom(path: str) -> bool:
    """A ``.dcm`` name or the DICOM preamble ('DICM' at byte 128)."""
    if path.lower().endswith(".dcm"):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def courseless_folders(
    courses: list[PlannedCourse],
    state: list[tuple[str, int, int]],
    scan_notes: list,
    root: str,
) -> tuple[list[PlannedCourse], list[str]]:
    """The folders under the root with files of no course: (error courses, notes).

    A folder with a file that looks like DICOM (see :func:`looks_like_dicom`) and could not be
    read becomes an error course (exit 3, naming the files and why), so that it cannot vanish
    from the batch; any other such folder (no DICOM files, or DICOM files that were read but
    belong to no course: an unlinked image series ...) gets a note in the summary."""
    from rtqa.model import Level

    claimed = {os.path.abspath(f) for c in courses for f in c.files}
    course_dirs = {os.path.dirname(f) for f in claimed}
    orphans: dict[str, list[str]] = {}
    for path, _, _ in state:
        full = os.path.abspath(path)
        if full not in claimed and os.path.dirname(full) not in course_dirs:
            orphans.setdefault(os.path.dirname(full), []).append(path)
    errors: dict[str, str] = {}  # abspath -> why unreadable
    not_dicom: set[str] = set()
    for note in scan_notes:
        if not note.path:
            continue
        full = os.path.abspath(note.path)
        if note.level is Level.ERROR:
            errors.setdefault(full, note.message)
        elif note.message.startswith("not a DICOM file"):
            not_dicom.add(full)
    root_abs = os.path.abspath(root)
    bad, notes = [], []
    for folder, files in orphans.items():
        rel = os.path.relpath(folder, root_abs)
        name = Path(root_abs).name if rel == "." else Path(rel).as_posix()
        problems = []
        for path in files:
            full = os.path.abspath(path)
            if full in errors:
                problems.append(f"{os.path.basename(path)}: {errors[full]}")
            elif full in not_dicom and looks_like_dicom(path):
                problems.append(f"{os.path.basename(path)}: not a readable DICOM file")
        if problems:
            shown = "; ".join(problems[:_PROBLEMS_SHOWN])
            if len(problems) > _PROBLEMS_SHOWN:
                shown += f"; and {len(problems) - _PROBLEMS_SHOWN} more"
            why = (
                f"input unreadable: folder {name} gave no course "
                f"({len(problems)} of {len(files)} files unreadable): {shown}"
            )
            bad.append(PlannedCourse(name, list(files), problem=why))
        else:
            dicom = [p for p in files if os.path.abspath(p) not in not_dicom]
            what = (
                f"{len(dicom)} DICOM file{'s' if len(dicom) != 1 else ''} of no course"
                if dicom
                else "no DICOM files"
            )
            notes.append(
                f"folder {name}: {len(files)} file{'s' if len(files) != 1 else ''}, "
                f"{what}: nothing to check"
            )
    return bad, notes


def _options_text(options: BatchOptions) -> str:
    """The check options that change a result, defaults filled in, as canonical text."""
    import dataclasses

    from rtqa.check import CheckOptions

    normal = dataclasses.asdict(CheckOptions(**options.check_options))
    normal.pop("protocol", None)
    return json.dumps(normal, sort_keys=True, default=str)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def make_tasks(
    courses: BatchPlan | list[PlannedCourse] | list[tuple[str, list[str]]],
    options: BatchOptions,
    protocol_file: Path,
    pseudonym_key: bytes | None,
) -> list[CourseTask]:
    """One task per course, keyed by its content (digests cached by size and mtime)."""
    from rtqa.dicom.linking import safe_name
    from rtqa.report.jsonfmt import SCHEMA_VERSION

    cache_path = Path(options.out) / PLAN_CACHE
    cache_doc = _read_json(cache_path) if pseudonym_key is None else {}
    old = {} if options.force else cache_doc.get("digests", {})
    fresh: dict[str, list] = {}
    protocol_digest = file_digest(protocol_file)
    # a result of another schema version is not reused: one batch writes one form
    extra = _options_text(options) + "\x00result:" + SCHEMA_VERSION
    psn = None
    if pseudonym_key is not None:
        from rtqa.pseudonym import Pseudonymizer

        psn = Pseudonymizer(pseudonym_key)
        extra += "\x00pseudonymised:" + psn.fingerprint
    tasks = []
    stems: set[str] = set()
    for course in courses:
        course_id, files = course
        planned = course if isinstance(course, PlannedCourse) else PlannedCourse(course_id, files)
        problem, retry = planned.problem, False
        digests = []
        for path in files:
            try:
                digests.append(_digest_cached(path, old, fresh))
            except OSError as exc:  # gone (or unreadable) since planning: an error row
                digests.append(f"missing:{os.path.abspath(path)}")
                if not retry:
                    why = exc.strerror or type(exc).__name__
                    problem, retry = f"input file gone since planning: {path} ({why})", True
        key = key_from_digests(digests, protocol_digest, __version__, extra)
        if psn is not None:
            from rtqa.pseudonym import course_pseudonym

            stem = course_pseudonym(psn, "", course_id)
        else:
            stem = safe_name(course_id)[:80]
        while stem.lower() in stems:
            stem += "_"
        stems.add(stem.lower())
        tasks.append(
            CourseTask(
                course_id=course_id,
                files=tuple(files),
                key=key,
                stem=stem,
                check_options={**options.check_options, "protocol": _protocol_arg(options)},
                root=os.path.abspath(options.root),
                pseudonym_key=pseudonym_key,
                html=options.html,
                cases=tuple((uid, case_id) for uid, case_id in planned.cases),
                priors=tuple((uid, case_id) for uid, case_id in planned.priors),
                problem=problem,
                problem_retry=retry,
            )
        )
    if cache_doc:
        cache_doc["digests"] = fresh
        atomic_write_text(cache_path, json.dumps(cache_doc))
    return tasks


def _protocol_arg(options: BatchOptions) -> str | None:
    """The protocol as workers get it: a file given by path becomes absolute (workers may run
    in another folder); a name stays a name (so the default protocol is still reported so)."""
    name = options.protocol
    if name and os.path.isfile(name):
        return os.path.abspath(name)
    return name


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _append_run_log(out: Path, outcome: Outcome) -> None:
    line = json.dumps(
        {
            "key": outcome.key[:KEY_CHARS],
            "course": outcome.stem,
            "status": outcome.status,
            "runtime_s": round(outcome.runtime_s, 4),
            "peak_rss_mb": None if outcome.peak_rss_mb is None else round(outcome.peak_rss_mb, 1),
            "worker": outcome.worker,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    fd = os.open(out / RUN_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_run_log(out: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The latest run-log entry per short key (a torn last line is ignored)."""
    entries: dict[str, dict[str, Any]] = {}
    try:
        lines = (Path(out) / RUN_LOG).read_text("utf-8").splitlines()
    except OSError:
        return entries
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "key" in entry:
            entries[entry["key"]] = entry
    return entries


def _input_bytes(task: CourseTask) -> int:
    """Total size of a course's input files: a rough measure of how long it takes."""
    total = 0
    for path in task.files:
        with contextlib.suppress(OSError):
            total += os.path.getsize(path)
    return total


def resolve_protocol(name: str | None) -> Path:
    """The protocol file for ``name`` (default protocol when None), validated now so that a bad
    constraint file stops the batch before any course (exit 2)."""
    from rtqa.protocol.loader import DEFAULT_PROTOCOL, find_protocol, load_protocol_file

    path = find_protocol(name or DEFAULT_PROTOCOL)
    load_protocol_file(path)
    return path.resolve()


def run_batch(
    options: BatchOptions,
    *,
    executor_factory: Callable[..., Any] | None = None,
    progress: Progress | None = None,
) -> BatchReport:
    """Run a batch (see the module docstring); KeyboardInterrupt propagates after the summary
    of what was finished has been written."""
    from rtqa.batch_exec import make_executor

    root = Path(options.root)
    if not root.is_dir():
        raise UsageError(f"batch root is not a folder: {options.root}")
    for fmt in options.format_extra:
        if fmt not in EXTRA_FORMATS:
            known = ", ".join(EXTRA_FORMATS)
            raise UsageError(f"--format-extra {fmt!r}: choose from {known}")
    if options.timeout is not None and options.timeout <= 0:
        raise UsageError(f"--timeout {options.timeout}: must be > 0 s")
    if options.workers is not None and options.workers < 1:
        raise UsageError(f"--workers {options.workers}: must be >= 1")
    pseudonym_key = None
    if options.key_file is not None:
        from rtqa.pseudonym import load_key

        pseudonym_key = load_key(options.key_file)
    protocol_file = resolve_protocol(options.protocol)

    store = ResultStore(options.out)
    store.prepare()
    courses = plan(options, protocol_file, cache=pseudonym_key is None)
    notes = _public_notes(courses.notes, pseudonym_key)
    tasks = make_tasks(courses, options, protocol_file, pseudonym_key)
    stored = store.stored()
    todo = [
        t
        for t in tasks
        if options.force or not is_done(stored.get(t.key[:KEY_CHARS]), html=options.html)
    ]
    skipped = len(tasks) - len(todo)
    todo.sort(key=_input_bytes, reverse=True)  # largest first: a long course never runs last
    again = [stored[t.key[:KEY_CHARS]] for t in todo if t.key[:KEY_CHARS] in stored]
    retried = 0 if options.force else sum(1 for s in again if s.failed)
    no_report = 0 if options.force else len(again) - retried
    mode = "quiet" if options.quiet else options.progress_mode
    progress = progress or Progress(len(todo), mode=mode)
    progress.message(
        f"{len(tasks)} course{'s' if len(tasks) != 1 else ''} under {options.root}: "
        f"{skipped} already done (skipped), {len(todo)} to check"
        + (f" ({retried} failed before: retried)" if retried else "")
        + (f" ({no_report} done without an HTML report: checked again)" if no_report else "")
    )
    for note in notes:
        progress.message(f"note: {note}")
    computed = 0
    interrupted = None
    try:
        if todo:
            factory = executor_factory or make_executor
            executor = factory(
                workers=options.workers,
                timeout=options.timeout,
                scheduler=options.scheduler,
                local_cluster=options.local_cluster,
            )
            try:
                progress.message(f"running on {executor.describe()}")
                for outcome in executor.run(todo):
                    path = report_path(store.path_for(outcome.stem, outcome.key))
                    if outcome.html is not None:  # first: a JSON result implies its report
                        atomic_write_text(path, outcome.html)
                    else:  # no page of an earlier run may stand for this result
                        path.unlink(missing_ok=True)
                    store.write(outcome.stem, outcome.key, outcome.text, failed=outcome.retry)
                    _append_run_log(store.out_dir, outcome)
                    computed += 1
                    progress.update(outcome.stem, outcome.status, outcome.runtime_s, outcome.error)
            finally:
                executor.close()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated: summary, then up
        interrupted = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        raise
    finally:
        progress.close()
        report = write_summary(
            options,
            tasks,
            skipped,
            computed,
            protocol_file,
            pseudonym_key,
            notes=notes,
            interrupted=interrupted,
        )
    progress.message(
        f"{report.planned} courses: {skipped} skipped, {computed} checked; "
        f"summary in {report.summary_csv}"
    )
    return report


def _public_notes(notes: list[str], pseudonym_key: bytes | None) -> list[str]:
    """Planning notes as they may be shown: folder names (which may name patients) are left
    out when pseudonymising."""
    if pseudonym_key is None or not notes:
        return list(notes)
    n = len(notes)
    return [
        f"{n} folder{'s' if n != 1 else ''} with files but nothing to check (not named: "
        "pseudonymised run)"
    ]


def report_path(result_path: Path) -> Path:
    """The HTML report beside a result file: ``<course>--<key>.html`` (done or failed)."""
    name = result_path.name
    for suffix in (FAILED_SUFFIX, DONE_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return result_path.with_name(name + ".html")


def is_done(item: StoredResult | None, *, html: bool = True) -> bool:
    """True when a course needs no check: a done (not failed) result, and its report if asked."""
    if item is None or item.failed:
        return False
    return not html or report_path(item.path).is_file()


# --------------------------------------------------------------------------------------------
# Summary, rebuilt from the result files
# --------------------------------------------------------------------------------------------

_STATUS_RANK = {"pass": 0, "info": 1, "not_evaluable": 2, "minor": 3, "major": 4}


def _excess(f: dict[str, Any]) -> float:
    """How far a finding lies beyond its limit, relative to it (margin < 0 beyond it; 0 when
    either is unknown): the most exceeded of equally severe findings is the worst."""
    from rtqa.report.common import finite, per_protocol_condition, thresholds

    margin = finite(f.get("margin"))
    refs = thresholds({"c": per_protocol_condition(f.get("limits") or {})})
    if margin is None or len(refs) != 1 or refs[0] == 0:
        return 0.0
    return -margin / abs(refs[0])


def worst_finding(doc: dict[str, Any]) -> str:
    """The most severe non-info finding of a result as one line ("" when all pass): of equally
    severe ones, the most exceeded relative to its limit, the count of the others added. A
    deviation gives its value (or the range it is known to lie in), rounded never to cross or
    touch its limit (:func:`rtqa.report.common.format_number`; an EQD2 judged against converted
    limits says so); a finding not evaluable gives its message (why), the value only without one.
    """
    from rtqa.report.common import format_bounded, thresholds, unit_shown

    flagged = [
        f
        for f in doc.get("findings", [])
        if f.get("status") in _STATUS_RANK and f.get("status") not in ("pass", "info")
    ]
    if not flagged:
        return ""
    worst = max(flagged, key=lambda f: (_STATUS_RANK[f["status"]], _excess(f)))
    status = worst["status"]
    others = sum(f["status"] == status for f in flagged) - 1
    more = f" (+{others} more {status})" if others else ""
    what = " ".join(x for x in (worst.get("roi"), worst.get("metric")) if x) or worst["rule"]
    limits = worst.get("limits") or {}
    if worst.get("value") is not None and (status != "not_evaluable" or not worst.get("message")):
        limit = limits.get("per_protocol") or limits.get("limit")
        unit = unit_shown(worst.get("unit"), worst.get("metric"), limits)
        bounds = worst.get("value_range")
        ends = None if not isinstance(bounds, dict) else (bounds.get("low"), bounds.get("high"))
        shown = format_bounded(worst["value"], ends, unit, thresholds(limits))
        sign = "" if shown.startswith(("<", ">")) else "= "  # '>= 78.41 Gy' says it already
        against = f" (limit {limit})" if limit else ""
        return f"{status}: {what} {sign}{shown}{against}{more}"
    return f"{status}: {what}: {worst.get('message', '')}".rstrip(": ") + more


def _join(values: list[Any]) -> str:
    return "; ".join(
        "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v)) for v in values
    )


def summary_row(doc: dict[str, Any], stored: StoredResult, out: Path, log: dict) -> dict[str, Any]:
    """One summary row from one result document."""
    plans = [p for p in doc.get("plans", []) if not p.get("prior")]
    counts = doc.get("counts", {})
    entry = log.get(stored.key, {})
    report = report_path(stored.path)
    status, error = doc.get("status", ""), doc.get("error", "")
    if status != "error" and doc.get("exit_code") == EXIT_UNREADABLE:
        # the check ran but the input could not be read: an error row, with the reason
        status = "error"
        reasons = [n["message"] for n in doc.get("notes", []) if n.get("level") == "error"]
        error = "; ".join(dict.fromkeys(reasons)) or worst_finding(doc)
    return {
        "course_id": doc.get("course_id", ""),
        "patient_id": doc.get("patient_id", ""),
        "plans": _join([p.get("label") for p in plans]),
        "fractions": _join([p.get("fractions") for p in plans]),
        "prescription_gy": _join([p.get("prescription_gy") for p in plans]),
        "status": status,
        "exit_code": doc.get("exit_code"),
        **{s: counts.get(s, 0) for s in ("major", "minor", "not_evaluable", "pass", "info")},
        "worst_finding": worst_finding(doc),
        "runtime_s": entry.get("runtime_s"),
        "error": error,
        "result_file": stored.path.relative_to(out).as_posix(),
        "report_file": report.relative_to(out).as_posix() if report.is_file() else "",
    }


def batch_exit_code(rows: list[dict[str, Any]]) -> int:
    """1 a deviation; else 3 a course unreadable or failed; else 4 not evaluable; else 0."""
    codes = [r.get("exit_code") for r in rows]
    if any(c == EXIT_DEVIATION for c in codes):
        return EXIT_DEVIATION
    if any(r.get("status") == "error" or r.get("exit_code") == EXIT_UNREADABLE for r in rows):
        return EXIT_UNREADABLE
    if any(c == EXIT_NOT_EVALUABLE for c in codes):
        return EXIT_NOT_EVALUABLE
    return EXIT_OK


#: Summary columns written as numbers (never neutralised as text).
NUMERIC_SUMMARY = frozenset(
    {"fractions", "prescription_gy", "exit_code", "runtime_s"}
    | {"major", "minor", "not_evaluable", "pass", "info"}
)


def _csv_text(rows: list[dict[str, Any]]) -> str:
    """summary.csv: text cells neutralised against spreadsheet formulas
    (:func:`rtqa.report.csv_out.safe_cells`), numbers as they are."""
    from rtqa.report.csv_out import safe_cells

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(safe_cells(row, SUMMARY_COLUMNS, NUMERIC_SUMMARY) for row in rows)
    return buf.getvalue()


def collect_rows(
    out: str | os.PathLike[str], tasks: list[CourseTask]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(summary rows, result documents) of the planned courses that have a result file."""
    out = Path(out)
    stored = ResultStore(out).stored()
    log = read_run_log(out)
    rows, docs = [], []
    for task in tasks:
        item = stored.get(task.key[:KEY_CHARS])
        if item is None:
            continue
        try:
            doc = item.load()
        except (OSError, ValueError) as exc:
            doc = {"course_id": task.stem, "status": "error", "error": f"unreadable: {exc}"}
        docs.append(doc)
        rows.append(summary_row(doc, item, out, log))
    return rows, docs


def write_summary(
    options: BatchOptions,
    tasks: list[CourseTask],
    skipped: int,
    computed: int,
    protocol_file: Path,
    pseudonym_key: bytes | None,
    notes: list[str] | None = None,
    interrupted: str | None = None,
) -> BatchReport:
    """Rebuild summary.csv / summary.json (and the extra formats) from the result files.
    ``notes``: what planning said of folders that hold files but nothing to check;
    ``interrupted``: ``"SIGINT"`` or ``"SIGTERM"`` when the run was stopped.

    ``results_exit_code`` is the verdict of the results present; ``exit_code`` the command's
    status: 130 (SIGINT) or 143 (SIGTERM) when interrupted, 5 when courses have no result
    although nothing stopped the run, else the results' code. ``complete`` is false whenever a
    planned course has no result, so an unfinished summary never reads as exit 0."""
    out = Path(options.out)
    rows, docs = collect_rows(out, tasks)
    results_code = batch_exit_code(rows)
    pending = len(tasks) - len(rows)
    if interrupted is not None:
        code = EXIT_TERMINATED if interrupted == "SIGTERM" else EXIT_INTERRUPTED
    else:
        code = EXIT_INTERNAL if pending else results_code
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = {
        "schema": SUMMARY_SCHEMA,
        "rtqa_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "root": None if pseudonym_key is not None else os.path.abspath(options.root),
        "protocol": {"name": options.protocol, "file_sha256": file_digest(protocol_file)},
        "pseudonymised": pseudonym_key is not None,
        "courses": len(tasks),
        "with_result": len(rows),
        "pending": pending,
        "complete": interrupted is None and pending == 0,
        "interrupted": interrupted,
        "results_exit_code": results_code,
        "skipped": skipped,
        "computed": computed,
        "counts": dict(sorted(counts.items())),
        "exit_code": code,
        "notes": list(notes or []),
        "rows": rows,
    }
    csv_path, json_path = out / "summary.csv", out / "summary.json"
    atomic_write_text(csv_path, _csv_text(rows))
    atomic_write_text(json_path, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    why = f"interrupted by {interrupted}" if interrupted else "no result stored"
    index = write_index(out, rows, pending=pending, why=why if pending else None)
    if options.format_extra:
        from rtqa.report import render

        renderables = [renderable_from_dict(d) for d in docs]
        for fmt in options.format_extra:
            atomic_write_text(out / EXTRA_FORMATS[fmt], render(renderables, fmt))
    return BatchReport(
        planned=len(tasks),
        skipped=skipped,
        computed=computed,
        rows=rows,
        exit_code=code,
        out_dir=out,
        summary_csv=csv_path,
        summary_json=json_path,
        index_html=index,
    )


def index_row(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row as :func:`rtqa.report.html_index.render_index` takes it."""
    statuses = ("major", "minor", "not_evaluable", "pass", "info")
    return {
        "case_id": row.get("course_id", ""),
        "patient": row.get("patient_id", ""),
        "plan": row.get("plans", ""),
        "fractions": row.get("fractions", ""),
        "rx_gy": row.get("prescription_gy", ""),
        "verdict": row.get("status", ""),
        "counts": {s: row[s] for s in statuses if row.get(s)},
        "worst_finding": row.get("worst_finding", ""),
        "runtime_s": row.get("runtime_s"),
        "error": row.get("error", ""),
        "report": row.get("report_file") or None,
    }


def write_index(
    out: Path, rows: list[dict[str, Any]], *, pending: int = 0, why: str | None = None
) -> Path:
    """``OUT/index.html``: the summary rows, each linking to its course's report (relative);
    ``pending`` courses without a result are shown in a banner (``why``)."""
    from rtqa.report.html_index import render_index

    rows_in = [index_row(r) for r in rows]
    return render_index(rows_in, out, "rtqa batch summary", pending=pending, why=why)


def renderable_from_dict(doc: dict[str, Any]):
    """A result document (rtqa-check JSON) back as a CheckResult or CourseError for renderers."""
    from rtqa.model import CheckResult, Finding, Level, Note, PlanSummary, Status
    from rtqa.report import CourseError

    created = _parse_time(doc.get("created"))
    if doc.get("status") == "error":
        return CourseError(
            course_id=doc.get("course_id", ""),
            message=doc.get("error", ""),
            exit_code=int(doc.get("exit_code", EXIT_UNREADABLE)),
            patient_id=doc.get("patient_id", ""),
            rtqa_version=doc.get("rtqa_version", ""),
            created=created,
        )
    protocol = doc.get("protocol", {})
    findings = [
        Finding(**{**f, "status": Status(f["status"]), "limits": dict(f.get("limits", {}))})
        for f in doc.get("findings", [])
    ]
    return CheckResult(
        course_id=doc["course_id"],
        patient_id=doc.get("patient_id", ""),
        plans=[PlanSummary(**p) for p in doc.get("plans", [])],
        protocol_id=protocol.get("id", ""),
        protocol_version=protocol.get("version", ""),
        protocol_title=protocol.get("title", ""),
        protocol_source=protocol.get("source", ""),
        default_protocol=bool(protocol.get("default")),
        findings=findings,
        verdict=Status(doc["verdict"]),
        exit_code=int(doc["exit_code"]),
        rtqa_version=doc.get("rtqa_version", ""),
        created=created,
        notes=[
            Note(Level(n["level"]), n["message"], n.get("path"), n.get("attribute"))
            for n in doc.get("notes", [])
        ],
        input_hashes=dict(doc.get("input_hashes", {})),
        grouping=doc.get("grouping", ""),
    )


def _parse_time(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)


__all__ = [
    "SUMMARY_COLUMNS",
    "BatchOptions",
    "BatchPlan",
    "BatchReport",
    "PlannedCourse",
    "batch_exit_code",
    "collect_rows",
    "courseless_folders",
    "index_row",
    "is_done",
    "looks_like_dicom",
    "make_tasks",
    "plan",
    "renderable_from_dict",
    "report_path",
    "resolve_protocol",
    "run_batch",
    "summary_row",
    "worst_finding",
    "write_index",
    "write_summary",
]
