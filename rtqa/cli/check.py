"""``rtqa check PLAN_DIR...``: judge each course found against a protocol.

Exit code over all courses: 1 if any deviates, else 3 if any could not be read, else 4 if any is
not fully evaluable, else 0 (2: usage or constraint-file error; 5: internal error).
"""

from __future__ import annotations

import sys

import click

FORMATS = ("text", "json", "csv", "junit", "html")


def combined_exit_code(codes: list[int]) -> int:
    """The worst of several course exit codes, in the order 1 > 3 > 4 > 0."""
    for code in (1, 3, 4):
        if code in codes:
            return code
    return max(codes, default=0)


@click.command("check")
@click.argument("plan_dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--protocol",
    "protocol",
    metavar="NAME|FILE",
    help="Protocol id, name or file (default: NRG-BR002).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option(
    "--fail-on",
    type=click.Choice(("minor", "major")),
    default="minor",
    show_default=True,
    help="Lowest deviation that gives exit code 1.",
)
@click.option("--site", help="Treatment site id of the protocol when it cannot be inferred.")
@click.option(
    "--rx",
    "rx",
    multiple=True,
    metavar="ROI=GY",
    help="Prescription of a target (total Gy) when the plan and name carry none.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="NAME=ROI",
    help="Map a protocol structure (or target rule) to an ROI; ROI=#N names ROI number N.",
)
@click.option(
    "--map-file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML or NAME=ROI lines mapping protocol structures to ROIs.",
)
@click.option("--separate", is_flag=True, help="Judge each plan of a course alone.")
@click.option("--current", "current", metavar="LABEL", help="Plan label to take as current.")
@click.option(
    "--prior",
    "priors",
    multiple=True,
    type=click.Path(exists=True),
    help="Folder of a prior course (repeatable).",
)
@click.option(
    "--prior-fractions",
    type=click.IntRange(min=1),
    help="Fraction count of the prior dose where its plan does not state it or its records "
    "disagree with it.",
)
@click.option(
    "--assume-aligned",
    is_flag=True,
    help="Take a prior course in another frame as aligned (no registration).",
)
@click.option(
    "--export-cumulative",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the cumulative EQD2 dose as RT Dose.",
)
@click.option(
    "--alpha-beta",
    type=float,
    metavar="GY",
    help="alpha/beta (Gy) for organs the protocol gives none.",
)
@click.option("--color/--no-color", default=None, help="ANSI colour (default: on a terminal).")
def check(
    plan_dirs,
    protocol,
    fmt,
    output,
    fail_on,
    site,
    rx,
    maps,
    map_file,
    separate,
    current,
    priors,
    prior_fractions,
    assume_aligned,
    export_cumulative,
    alpha_beta,
    color,
) -> None:
    """Check the plans in PLAN_DIR against a protocol."""
    from rtqa.check import CheckOptions, run_check
    from rtqa.errors import UsageError
    from rtqa.protocol.loader import DEFAULT_PROTOCOL
    from rtqa.protocol.prescription import parse_rx_args

    try:
        rx_map = parse_rx_args(rx)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    mapping: dict = {}
    if map_file:
        from rtqa.protocol.matching import load_mapping_file

        mapping.update(load_mapping_file(map_file))
    if maps:
        from rtqa.protocol.matching import parse_mapping_args

        mapping.update(parse_mapping_args(maps))
    options = CheckOptions(
        protocol=protocol,
        fail_on=fail_on,
        site=site,
        rx=rx_map,
        mapping=mapping,
        separate=separate,
        current_label=current,
        priors=list(priors),
        prior_fractions=prior_fractions,
        assume_aligned=assume_aligned,
        export_cumulative=export_cumulative,
        alpha_beta=alpha_beta,
        keep_context=fmt == "html",
    )
    if protocol is None:
        click.echo(
            f"rtqa: no --protocol given: using the default protocol ({DEFAULT_PROTOCOL})",
            err=True,
        )
    results = run_check(list(plan_dirs), options)
    from rtqa.report import render

    if color is None:
        color = output is None and fmt == "text" and sys.stdout.isatty()
    text = render(results if len(results) > 1 else results[0], fmt, color=bool(color))
    if output:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    else:
        click.echo(text, nl=not text.endswith("\n"))
    ctx = click.get_current_context()
    ctx.exit(combined_exit_code([r.exit_code for r in results]))
