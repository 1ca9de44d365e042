"""``rtqa batch``: check every course under a folder, resumably; one bad case never stops all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from rtqa.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    RtqaError,
    Terminated,
    UsageError,
)


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the summary be written
    raise Terminated()


def _say(text: str) -> None:
    """One line on standard error; a closed or broken stderr is ignored (never fatal)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _validate_check_options(protocol: str | None, check_options: dict[str, Any]) -> None:
    """What ``rtqa check`` refuses (an option value, a --site the protocol does not list),
    refused here before any course is planned or stored: UsageError (exit 2)."""
    from rtqa.check import CheckOptions, load_protocol_for

    options = CheckOptions(protocol=protocol, **check_options)  # validates the values
    if options.site is not None:
        from rtqa.protocol.plan_rules import choose_site

        loaded, _ = load_protocol_for(options)
        choose_site(loaded, [], None, None, options.site)  # the check's own test of --site


def _prepare_out(out: str) -> bool:
    """Create the output folder (True when this run created it); UsageError naming the path
    and the system's reason when it cannot be created or written."""
    path = Path(out)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--out {out}: cannot create the output folder: {exc.strerror or exc}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: the output folder is not writable")
    return created


def _remove_if_empty(out: str) -> None:
    """Undo :func:`_prepare_out` after a usage error: remove the folder if nothing is in it."""
    from rtqa.batch_store import RESULTS_DIR

    for folder in (Path(out) / RESULTS_DIR, Path(out)):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, inode) of ``path``; None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _formats(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))


@click.command("batch")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--protocol", metavar="NAME|FILE", help="Protocol id, name or file (default: NRG-BR002)."
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: one result JSON and HTML report per course, summary.csv, "
    "summary.json and index.html (the summary, linking every report).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Courses checked at once (default: the cores available; with "
    "--local-cluster: the number of Dask workers).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Submit to an existing Dask scheduler, e.g. tcp://host:8786 (workers must "
    "read ROOT at the same path).",
)
@click.option("--local-cluster", is_flag=True, help="Run on a Dask LocalCluster on this machine.")
@click.option("--force", is_flag=True, help="Recompute every course, even those already done.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop a course after S seconds (it becomes an error row; retried next run).",
)
@click.option(
    "--pseudonymize",
    is_flag=True,
    help="Remove patient identifiers from every output (DICOM PS3.15 Basic Profile; "
    "keyed pseudonyms, shifted dates). Needs --key-file.",
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    help="Secret key for --pseudonymize (at least 16 bytes; keep it to get the same "
    "pseudonyms again).",
)
@click.option(
    "--fail-on",
    type=click.Choice(("minor", "major")),
    default="minor",
    show_default=True,
    help="Lowest deviation that makes a course fail (exit 1).",
)
@click.option("--site", help="Treatment site id of the protocol when it cannot be inferred.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option(
    "--format-extra",
    metavar="csv,junit",
    help="Also write all findings as findings.csv and/or junit.xml.",
)
@click.option(
    "--no-html",
    is_flag=True,
    help="Skip the HTML report of each course (about 0.5 s per course); index.html is still "
    "written. A later run with HTML checks such courses again to draw their reports.",
)
@click.pass_context
def batch(
    ctx: click.Context,
    root: str,
    protocol: str | None,
    out: str,
    workers: int | None,
    scheduler: str | None,
    local_cluster: bool,
    force: bool,
    timeout: float | None,
    pseudonymize: bool,
    key_file: str | None,
    fail_on: str,
    site: str | None,
    quiet: bool,
    format_extra: str | None,
    no_html: bool,
) -> None:
    """Check every course under ROOT (any folder depth, several per folder, grouped as
    ``rtqa check`` groups them) and write one result per course into --out.

    A course's result is keyed by the SHA-256 of its input files, the protocol file and the
    rtqa version: a rerun skips what is done and checks only the rest (--force: everything).
    Each course also gets a self-contained HTML report, and --out/index.html links them all.
    A course that cannot be read, crashes its worker or runs past --timeout becomes an
    ``error`` row; the batch goes on.

    Exit status: 1 a course deviates; else 3 a course could not be read or run; else 4 a course
    is not fully evaluable; else 0. 2 usage or constraint-file error, 5 internal error,
    130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM: scancel, timeout). When
    interrupted or terminated, the workers are stopped and the summary of the courses done is
    written, marked incomplete with the count of pending courses; a rerun checks the rest.
    """
    from rtqa.batch import BatchOptions, run_batch

    if pseudonymize and not key_file:
        raise UsageError("--pseudonymize needs --key-file FILE (a secret of at least 16 bytes)")
    if key_file and not pseudonymize:
        raise UsageError("--key-file is only used with --pseudonymize")
    check_options: dict = {"fail_on": fail_on}
    if site:
        check_options["site"] = site
    _validate_check_options(protocol, check_options)
    created = _prepare_out(out)
    options = BatchOptions(
        root=root,
        out=out,
        protocol=protocol,
        workers=workers,
        scheduler=scheduler,
        local_cluster=local_cluster,
        force=force,
        timeout=timeout,
        key_file=key_file if pseudonymize else None,
        quiet=quiet,
        format_extra=_formats(format_extra),
        check_options=check_options,
        html=not no_html,
    )
    summary_json = Path(out) / "summary.json"
    before = _stamp(summary_json)
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            report = run_batch(options)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        code = EXIT_TERMINATED if name == "SIGTERM" else EXIT_INTERRUPTED
        summary = _read_summary(summary_json) if _stamp(summary_json) != before else None
        if summary is None:  # stopped before this run wrote a summary
            _say(f"rtqa: interrupted ({name}) before any course was checked")
            ctx.exit(code)
        _say(
            f"rtqa: interrupted ({name}): {summary.get('with_result', 0)} course(s) with a "
            f"result, {summary.get('pending', 0)} pending; incomplete summary in {summary_json} "
            "(run the same command again to go on)"
        )
        ctx.exit(code)
    except RtqaError as exc:
        if created and exc.exit_code == EXIT_USAGE:
            _remove_if_empty(out)
        raise
    if report.exit_code == EXIT_INTERNAL:
        _say(
            f"rtqa: internal error: {report.planned - len(report.rows)} course(s) have no "
            f"result although the batch ran to its end (see {summary_json})"
        )
    ctx.exit(report.exit_code)
