"""Limits that are impossible, can never fail, or are implausible, and acceptable bands that are
not strictly looser than per_protocol: refused by the loader (exit 2, file:line, key, why)."""

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.errors import ConstraintFileError
from rtqa.model import Status
from rtqa.protocol.loader import load_protocol_file, shipped_protocol_files

ROOT = Path(__file__).resolve().parent.parent
TG101 = ROOT / "constraints" / "tg101.yaml"

HEAD = """\
protocol: TEST-1
version: "1"
title: Test protocol
description: A test.
sources:
  - &doc {document: "Doc A", table: "III"}
organs:
  - roi: {name: SpinalCord}
    source: *doc
    confidence: secondary
    limits:
      3:
"""
LINE = 13  # the line of the limit written after HEAD
KEY = "organs/0/limits/3"


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load_limit(tmp_path, metric, spec):
    p = load_protocol_file(write(tmp_path, HEAD + f"        {metric}: {spec}\n"))
    (limit,) = p.organ("SpinalCord").limits_for(3)
    return limit


def refused(tmp_path, metric, spec):
    path = write(tmp_path, HEAD + f"        {metric}: {spec}\n")
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert (exc.value.line, exc.value.key) == (LINE, f"{KEY}/{metric}")
    prefix = f"{path}:{LINE} (key '{KEY}/{metric}'): "
    assert str(exc.value).startswith(prefix)
    return str(exc.value)[len(prefix) :]


# --- the reviewer's files: tg101.yaml with the cord's first limit changed, through the command line


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'D0.35cc[Gy]: "<= -10"',
            "limit '<= -10' for D0.35cc[Gy]: a dose is never negative; a negative limit is "
            "impossible",
        ),
        (
            'V10Gy[%]: "<= -5"',
            "limit '<= -5' for V10Gy[%]: a percentage of the structure's volume is never "
            "negative; a negative limit is impossible",
        ),
        (
            'V10Gy[%]: "<= 150"',
            "limit '<= 150' for V10Gy[%]: a percentage of the structure's volume lies in 0-100; "
            "a limit above 100 is impossible or can never fail",
        ),
        (
            'D0.35cc[cGy]: "<= 10"',
            "limit '<= 10' for D0.35cc[cGy]: a dose limit under 100 cGy (1 Gy) is implausible "
            "(a limit in Gy? write the metric with [Gy]; a genuine sub-gray limit is written in "
            "Gy, e.g. '<= 0.1' with [Gy])",
        ),
        (
            'D0.35cc[Gy]: "<= 1000"',
            "limit '<= 1000' for D0.35cc[Gy]: a dose limit above 200 Gy is implausible (a limit "
            "in cGy? write the metric with [cGy])",
        ),
        (
            'D0.35cc[Gy]: {per_protocol: "<= 14", acceptable: "< 14"}',
            "acceptable '< 14' is not looser than per_protocol '<= 14': acceptable is stricter; "
            "acceptable's limit must lie above 14",
        ),
        (
            'D0.35cc[Gy]: {per_protocol: "<= 14", acceptable: "<= 14"}',
            "acceptable '<= 14' is not looser than per_protocol '<= 14': the minor band between "
            "them is empty; acceptable's limit must lie above 14",
        ),
    ],
)
def test_reviewer_files_exit_2_naming_file_line_key(tmp_path, line, message):
    text = TG101.read_text()
    original = '        D0.35cc[Gy]: "<= 10"\n'
    lineno = text.splitlines(keepends=True).index(original) + 1  # the cord's first 1-fx limit
    path = tmp_path / "tg101.yaml"
    path.write_text(text.replace(original, f"        {line}\n", 1))
    result = CliRunner().invoke(cli, ["protocols", "validate", str(path)])
    assert result.exit_code == 2
    metric = line.split(":")[0]
    assert result.stderr == (
        f"rtqa: error: {path}:{lineno} (key 'organs/1/limits/1/{metric}'): {message}\n"
    )
    assert result.stdout == ""


def test_shipped_files_stay_valid():
    files = shipped_protocol_files()
    assert {f.stem for f in files} >= {"tg101", "nrg_br002", "boss", "spine_reirradiation"}
    for f in files:
        load_protocol_file(f)  # raises on any refusal


# --- impossible and vacuous limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "spec", "message"),
    [
        (
            "V20Gy[cc]",
            '"<= -0.1"',
            "limit '<= -0.1' for V20Gy[cc]: a volume is never negative; a negative limit is "
            "impossible",
        ),
        (
            "CV7Gy[cc]",
            '">= -5"',
            "limit '>= -5' for CV7Gy[cc]: a volume is never negative; a negative limit is "
            "impossible",
        ),
        (
            "Max[%]",
            '"<= -1"',
            "limit '<= -1' for Max[%]: a percentage is never negative; a negative limit is "
            "impossible",
        ),
        (
            "Mean[Gy]",
            '"< 0"',
            "limit '< 0' for Mean[Gy]: a dose is never below 0: the limit can never be met",
        ),
        (
            "V10Gy[%]",
            '"<= 100"',
            "limit '<= 100' for V10Gy[%]: a percentage of the structure's volume is never above "
            "100: the limit can never fail",
        ),
        (
            "V10Gy[%]",
            '"> 100"',
            "limit '> 100' for V10Gy[%]: a percentage of the structure's volume is never above "
            "100: the limit can never be met",
        ),
        (
            "V10Gy[%]",
            '">= 0"',
            "limit '>= 0' for V10Gy[%]: a percentage of the structure's volume is never below "
            "0: the limit can never fail",
        ),
        (
            "CV10Gy[%]",
            '">= 100.5"',
            "limit '>= 100.5' for CV10Gy[%]: a percentage of the structure's volume lies in "
            "0-100; a limit above 100 is impossible or can never fail",
        ),
        (
            "V100%[%]",
            '{per_protocol: ">= 95", acceptable: ">= 0"}',
            "acceptable '>= 0' for V100%[%]: a percentage of the structure's volume is never "
            "below 0: the limit can never fail",
        ),
        (
            "Max[Gy]",
            '"<= 200.5"',
            "limit '<= 200.5' for Max[Gy]: a dose limit above 200 Gy is implausible (a limit in "
            "cGy? write the metric with [cGy])",
        ),
        (
            "Max[cGy]",
            '"<= 20001"',
            "limit '<= 20001' for Max[cGy]: a dose limit above 20000 cGy is implausible",
        ),
        (
            "Max[cGy]",
            '">= 99.9"',
            "limit '>= 99.9' for Max[cGy]: a dose limit under 100 cGy (1 Gy) is implausible (a "
            "limit in Gy? write the metric with [Gy]; a genuine sub-gray limit is written in Gy, "
            "e.g. '>= 0.999' with [Gy])",
        ),
    ],
)
def test_impossible_vacuous_or_implausible_limit_refused(tmp_path, metric, spec, message):
    assert refused(tmp_path, metric, spec) == message


@pytest.mark.parametrize(
    ("metric", "spec"),
    [
        ("V20Gy[cc]", '"<= 0"'),  # no volume may receive 20 Gy: meaningful
        ("V20Gy[%]", '"<= 0"'),
        ("V20Gy[%]", '"< 100"'),  # not the whole structure
        ("V100%[%]", '">= 100"'),  # full coverage
        ("V100%[%]", '"> 0"'),
        ("Max[%]", '"<= 110"'),  # % of the prescription may exceed 100
        ("D2%[%]", '"<= 107"'),
        ("Max[Gy]", '"<= 200"'),  # the boundary itself is accepted
        ("Max[Gy]", '"<= 0.05"'),  # a sub-gray limit written in Gy
        ("Max[cGy]", '"<= 100"'),
        ("Max[cGy]", '"<= 20000"'),
        ("Max[cGy]", '"<= 0"'),
        ("V0Gy[cc]", '">= 0"'),  # a probe that reports a volume (tests/test_derived_structures)
    ],
)
def test_possible_limits_accepted(tmp_path, metric, spec):
    limit = load_limit(tmp_path, metric, spec)
    assert limit.metric.canonical == metric
    assert limit.conditions == {"limit": spec.strip('"')}


# --- acceptable strictly looser than per_protocol, all four operators --------------------------

_BAND = "D0.35cc[Gy]"


@pytest.mark.parametrize(
    ("pp", "acc", "why", "side"),
    [
        ("<= 14", "<= 14", "the minor band between them is empty", "above"),
        ("< 14", "< 14", "the minor band between them is empty", "above"),
        ("<= 14", "< 14", "acceptable is stricter", "above"),
        ("< 14", "<= 14", "the minor band between them is the single value 14", "above"),
        (">= 14", ">= 14", "the minor band between them is empty", "below"),
        ("> 14", "> 14", "the minor band between them is empty", "below"),
        (">= 14", "> 14", "acceptable is stricter", "below"),
        ("> 14", ">= 14", "the minor band between them is the single value 14", "below"),
    ],
)
def test_acceptable_with_the_same_number_refused(tmp_path, pp, acc, why, side):
    spec = f'{{per_protocol: "{pp}", acceptable: "{acc}"}}'
    assert refused(tmp_path, _BAND, spec) == (
        f"acceptable '{acc}' is not looser than per_protocol '{pp}': {why}; "
        f"acceptable's limit must lie {side} 14"
    )


def test_acceptable_stricter_by_number_still_refused(tmp_path):
    spec = '{per_protocol: "> 14", acceptable: ">= 15"}'
    assert (
        refused(tmp_path, _BAND, spec) == "acceptable '>= 15' is stricter than per_protocol '> 14'"
    )


@pytest.mark.parametrize(
    ("pp", "acc", "value", "status"),
    [
        ("<= 14", "< 14.5", 14.2, Status.MINOR),
        ("< 14", "<= 14.01", 14.0, Status.MINOR),
        (">= 14", "> 13.5", 13.6, Status.MINOR),
        ("> 14", ">= 13", 13.0, Status.MINOR),
        ("> 14", ">= 13", 12.99, Status.MAJOR),
    ],
)
def test_strictly_looser_acceptable_accepted(tmp_path, pp, acc, value, status):
    limit = load_limit(tmp_path, _BAND, f'{{per_protocol: "{pp}", acceptable: "{acc}"}}')
    assert limit.conditions == {"per_protocol": pp, "acceptable": acc}
    assert limit.judge(value).status is status


# --- the same checks in target rules, plan-quality rules and prior-radiation tables -------------


def test_target_check_with_an_empty_band_refused_at_its_line(tmp_path):
    text = HEAD.split("organs:")[0] + textwrap.dedent("""\
        targets:
          - id: PTV
            roi: {type: PTV}
            source: *doc
            confidence: secondary
            checks:
              - {metric: "V100%[%]", per_protocol: ">= 95", acceptable: ">= 95"}
        """)
    path = write(tmp_path, text)
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert str(exc.value) == (
        f"{path}:13 (key 'targets/0/checks/0'): acceptable '>= 95' is not looser than "
        "per_protocol '>= 95': the minor band between them is empty; acceptable's limit must "
        "lie below 95"
    )


def test_target_check_above_100_percent_refused(tmp_path):
    text = HEAD.split("organs:")[0] + textwrap.dedent("""\
        targets:
          - id: PTV
            roi: {type: PTV}
            source: *doc
            confidence: secondary
            checks:
              - {metric: "V100%[%]", limit: ">= 101"}
        """)
    path = write(tmp_path, text)
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert str(exc.value) == (
        f"{path}:13 (key 'targets/0/checks/0'): limit '>= 101' for V100%[%]: a percentage of "
        "the structure's volume lies in 0-100; a limit above 100 is impossible or can never fail"
    )


def test_quality_band_and_table_row_with_equal_numbers_refused(tmp_path):
    quality = HEAD.split("organs:")[0] + textwrap.dedent("""\
        plan_quality:
          source: *doc
          confidence: secondary
          metrics:
        """)
    path = write(tmp_path, quality + '    CI: {per_protocol: "< 1.2", acceptable: "< 1.2"}\n')
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert str(exc.value) == (
        f"{path}:11 (key 'plan_quality/metrics/CI'): acceptable '< 1.2' is not looser than "
        "per_protocol '< 1.2': the minor band between them is empty; acceptable's limit must "
        "lie above 1.2"
    )
    table = textwrap.indent(
        textwrap.dedent("""\
            R50%:
              per_protocol: "<"
              acceptable: "<="
              table:
                - [1.8, 5.9, 7.5]
                - [3.8, 5.5, 5.5]
            """),
        "    ",
    )
    path = write(tmp_path, quality + table)
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert str(exc.value) == (
        f"{path}:16 (key 'plan_quality/metrics/R50%/table/1'): acceptable 5.5 equals "
        "per_protocol 5.5: no minor band; acceptable's limit must lie above 5.5"
    )


PRIOR = """\
prior_radiation:
  policy: {value: cumulative}
  source: *doc
  confidence: secondary
  cumulative_eqd2:
    SpinalCord: {"Max[Gy]": "<= 70"}
  course_share:
    SpinalCord: {"Max[Gy]": "SHARE"}
"""


@pytest.mark.parametrize(
    ("share", "message"),
    [
        (
            "<= 1.5",
            "limit '<= 1.5' for Max[Gy]: a share of the cumulative EQD2 lies in 0-1; a limit "
            "above 1 is impossible or can never fail",
        ),
        (
            "<= 1",
            "limit '<= 1' for Max[Gy]: a share of the cumulative EQD2 is never above 1: the "
            "limit can never fail",
        ),
        (
            "<= -0.5",
            "limit '<= -0.5' for Max[Gy]: a share of the cumulative EQD2 is never negative; a "
            "negative limit is impossible",
        ),
    ],
)
def test_course_share_is_judged_as_a_share(tmp_path, share, message):
    text = HEAD + '        Max[Gy]: "<= 20"\n' + PRIOR.replace("SHARE", share)
    path = write(tmp_path, text)
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    assert str(exc.value) == (
        f"{path}:21 (key 'prior_radiation/course_share/SpinalCord/Max[Gy]'): {message}"
    )


def test_course_share_of_one_half_accepted(tmp_path):
    text = HEAD + '        Max[Gy]: "<= 20"\n' + PRIOR.replace("SHARE", "<= 0.5")
    pr = load_protocol_file(write(tmp_path, text)).prior_radiation
    assert pr.course_share["SpinalCord"][0].conditions == {"limit": "<= 0.5"}
    assert pr.cumulative_eqd2["SpinalCord"][0].conditions == {"limit": "<= 70"}
