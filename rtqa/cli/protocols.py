"""``rtqa protocols``: list the shipped protocols, validate a constraint file, show one."""

from __future__ import annotations

import click

from rtqa.errors import EXIT_USAGE, ConstraintFileError
from rtqa.protocol.loader import (
    DEFAULT_PROTOCOL,
    find_protocol,
    load_protocol_file,
    shipped_protocol_files,
)
from rtqa.protocol.model import Limit, Protocol, Source, SourcedValue


@click.group(invoke_without_command=True)
@click.pass_context
def protocols(ctx: click.Context) -> None:
    """List the shipped protocols (id, version, title, source); see also validate and show."""
    if ctx.invoked_subcommand is None:
        _list()


def _list() -> None:
    files = shipped_protocol_files()
    if not files:
        click.echo("no protocol files found")
        return
    rows = []
    for f in files:
        try:
            p = load_protocol_file(f)
        except ConstraintFileError as exc:
            rows.append((f.stem, "-", "INVALID", str(exc), ""))
            continue
        default = " (default)" if f.stem == DEFAULT_PROTOCOL else ""
        rows.append((f.stem, p.id + default, p.version, p.title, p.source_summary))
    for stem, pid, version, title, source in rows:
        click.echo(f"{stem:<20} {pid:<22} {version:<8} {title}")
        if source:
            click.echo(f"{'':<20} sources: {source}")


@protocols.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Validate a constraint FILE: exit 0 when valid, 2 with the problem (file:line, key)."""
    try:
        p = load_protocol_file(file)
    except ConstraintFileError as exc:
        click.echo(f"rtqa: error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    limits = sum(1 for _ in p.provenance())
    click.echo(
        f"valid: {file}: {p.id} {p.version}, {len(p.organs)} organs, {limits} sourced values"
    )


@protocols.command("show")
@click.argument("name")
def show(name: str) -> None:
    """Print a protocol's rules: per organ and fraction count the limits, source, confidence."""
    p = load_protocol_file(find_protocol(name))
    click.echo(render_protocol(p))


_SOURCES: list[Source] = []


def _src(source: Source | None) -> str:
    """A source as a reference to the numbered list printed at the top ([n])."""
    if source is None:
        return "(rtqa rule)"
    for i, s in enumerate(_SOURCES, 1):
        if s == source:
            return f"[{i}]"
        if s.document == source.document:
            extra = ", ".join(
                x
                for x in (source.table and f"Table {source.table}", source.section, source.note)
                if x
            )
            return f"[{i}] {extra}".rstrip()
    return str(source)


def _lim(lim: Limit) -> str:
    bands = " | ".join(f"{k} {v}" for k, v in lim.conditions.items())
    note = f"  ({lim.note})" if lim.note else ""
    return f"{lim.metric.canonical:<16} {bands:<40} {lim.confidence:<10} {_src(lim.source)}{note}"


def _sv(label: str, sv: SourcedValue | None) -> list[str]:
    if sv is None:
        return []
    value = sv.value
    if isinstance(value, tuple | list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    src = f"{sv.confidence or '-':<10} {_src(sv.source)}"
    sev = f" [{sv.severity}]" if sv.severity != "major" else ""
    note = f"  ({sv.note})" if sv.note else ""
    return [f"  {label:<24} {value!s:<12}{sev} {src}{note}"]


def render_protocol(p: Protocol) -> str:
    """The text ``rtqa protocols show`` prints."""
    _SOURCES[:] = p.sources
    out = [f"{p.id} {p.version}: {p.title}", f"file: {p.path}", "", p.description, "", "Sources:"]
    out += [f"  [{i}] {s}" for i, s in enumerate(p.sources, 1)]
    fr = p.fractionation
    out += ["", "Fractionation:"]
    for r in fr.regimens:
        title = fr.sites[r.site].title if r.site in fr.sites else r.site
        out.append(
            f"  {title:<44} {r.total_gy:g} Gy / {r.fractions} fx   {r.confidence:<10} "
            f"{_src(r.source)}"
        )
    out += _sv("allowed fractions", fr.allowed_fractions)
    out += _sv("complete within (days)", fr.complete_within_days)
    out += _sv("min interval (hours)", fr.min_interval_hours)
    out += _sv("min targets", fr.min_targets)
    out += _sv("max targets", fr.max_targets)
    for sv in fr.excluded_sites:
        out += _sv("excluded site", sv)
    if p.targets:
        out += ["", "Targets:"]
        for t in p.targets:
            out.append(f"  {t.id} ({t.roi.label}):")
            for c in t.checks:
                fx = f"{c.fractions} fx" if c.fractions else "any"
                out.append(f"    {fx:<7} {_lim(c)}")
    if p.organs:
        out += ["", "Organs (limits per fraction count):"]
        for o in p.organs:
            req = " required" if o.required else ""
            if o.required_for_sites:
                req += f" required for {', '.join(o.required_for_sites)}"
            out.append(f"  {o.name} ({o.title}){req}")
            if o.roi.aliases:
                out.append(f"    aliases: {', '.join(o.roi.aliases)}")
            if o.roi.is_derived:
                out.append(f"    derived: {o.roi.label}")
            if o.note:
                out.append(f"    note: {o.note}")
            for fx in (*o.fraction_counts, None):
                for lim in o.limits.get(fx, ()):
                    label = f"{fx} fx" if fx else "any"
                    out.append(f"    {label:<7} {_lim(lim)}")
    if p.plan_quality is not None:
        pq = p.plan_quality
        sites = ", ".join(pq.sites) if pq.sites else "every site"
        out += ["", f"Plan quality ({sites}):"]
        for q in pq.rules:
            if q.bands is not None:
                out.append(
                    f"  {q.metric.canonical:<10} {q.bands}   {q.confidence}  {_src(q.source)}"
                )
                continue
            out.append(
                f"  {q.metric.canonical:<10} per_protocol {q.per_protocol_op} / acceptable "
                f"{q.acceptable_op} by PTV volume  {q.confidence}  {_src(q.source)}"
            )
            for row in q.rows:
                acc = f"{row.acceptable:g}" if row.acceptable is not None else "-"
                out.append(
                    f"    {row.ptv_cc:>7g} cc  {row.per_protocol:>6g}  {acc:>6}  {row.confidence}"
                )
    pc = p.plan_checks
    checks = _sv("max grid spacing (mm)", pc.max_grid_spacing_mm)
    checks += _sv("grid covers structures", pc.grid_covers_structures)
    checks += _sv("heterogeneity correction", pc.heterogeneity_correction)
    if checks:
        out += ["", "Plan checks:", *checks]
    pr = p.prior_radiation
    if pr is None:
        out += [
            "",
            "Prior radiation: no policy (overlapping re-irradiation is not evaluable under this "
            "protocol)",
        ]
    else:
        out += ["", "Prior radiation (EQD2, Gy):"]
        out += _sv("policy", pr.policy)
        out += _sv("min interval (months)", pr.min_interval_months)
        out += _sv("overlap isodose (% of each Rx)", pr.overlap_isodose_pct)
        for organ, sv in pr.alpha_beta.items():
            out += _sv(f"alpha/beta {organ}", sv)
        for organ, sv in pr.recovery.items():
            out += _sv(f"recovery {organ}", sv)
        for section in ("cumulative_eqd2", "course_eqd2", "course_share"):
            for organ, limits in getattr(pr, section).items():
                for lim in limits:
                    out.append(f"  {section:<16} {organ:<12} {_lim(lim)}")
    return "\n".join(out)
