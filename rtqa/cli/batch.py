"""``rtqa batch``: check every course under a folder, resumably; one bad case never stops all."""

from __future__ import annotations

import click

from rtqa.errors import UsageError


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
    is not fully evaluable; else 0. 2 usage or constraint-file error, 130 interrupted.
    """
    from rtqa.batch import BatchOptions, run_batch

    if pseudonymize and not key_file:
        raise UsageError("--pseudonymize needs --key-file FILE (a secret of at least 16 bytes)")
    if key_file and not pseudonymize:
        raise UsageError("--key-file is only used with --pseudonymize")
    check_options: dict = {"fail_on": fail_on}
    if site:
        check_options["site"] = site
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
    report = run_batch(options)
    ctx.exit(report.exit_code)
