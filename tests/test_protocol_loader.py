"""Constraint-file loading: a valid minimal file, and each kind of malformed file with the exact
message (file:line, key, what was expected)."""

import textwrap

import pytest

from rtqa.errors import ConstraintFileError, UsageError
from rtqa.model import Status
from rtqa.protocol.loader import find_protocol, load_protocol, load_protocol_file
from rtqa.protocol.model import Confidence, OutsideTable

HEAD = """\
protocol: TEST-1
version: "1"
title: Test protocol
description: A test.
sources:
  - &doc {document: "Doc A", table: "III"}
"""

ORGAN = """\
organs:
  - roi: {name: SpinalCord, aliases: [cord]}
    source: *doc
    confidence: secondary
    limits:
      3:
        D0.03cc[Gy]: "<= 21.9"
        D0.35cc[Gy]: {per_protocol: "<= 18", acceptable: "<= 19", confidence: unverified}
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConstraintFileError) as exc:
        load_protocol_file(path)
    return path, exc.value


def test_minimal_valid_file(tmp_path):
    p = load_protocol_file(write(tmp_path, HEAD + ORGAN))
    cord = p.organ("SpinalCord")
    assert cord.roi.aliases == ("cord",)
    d003, d035 = cord.limits_for(3)
    assert (d003.metric.canonical, d003.conditions) == ("D0.03cc[Gy]", {"limit": "<= 21.9"})
    assert d003.source.document == "Doc A" and d003.confidence is Confidence.SECONDARY
    assert d003.line == 13
    assert d035.confidence is Confidence.UNVERIFIED
    assert d035.judge(18.5).status is Status.MINOR
    assert cord.limits_for(5) == ()


def test_yaml_syntax_error(tmp_path):
    path, exc = error(tmp_path, HEAD + "organs: [\n  - roi: {name: X\n")
    assert str(exc).startswith(f"{path}:8: YAML syntax error: ")
    assert exc.line == 8


def test_unknown_metric(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace("D0.03cc[Gy]", "D0.03ccm[Gy]"))
    assert str(exc) == (
        f"{path}:13 (key 'organs/0/limits/3/D0.03ccm[Gy]'): unknown metric 'D0.03ccm[Gy]': "
        "expected D<v>(cc|%)[Gy|cGy|%], V<d>(Gy|cGy|%)[cc|%], DC.., CV.., "
        "Mean|Max|Min|Median[Gy|cGy|%] or one of CI, CI_Paddick, GI, R50%, D2cm[%], HI, Spill105[%]"
    )
    assert (exc.line, exc.key) == (13, "organs/0/limits/3/D0.03ccm[Gy]")


def test_unknown_key(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace("    limits:", "    limitz:"))
    assert str(exc) == (
        f"{path}:11 (key 'organs/0/limitz'): unknown key 'limitz'; expected one of: roi, title, "
        "required, required_for_sites, sites, alpha_beta, limits, source, confidence, note"
    )


def test_wrong_type(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace('"<= 21.9"', "21.9"))
    assert str(exc) == (
        f"{path}:13 (key 'organs/0/limits/3/D0.03cc[Gy]'): expected a condition such as "
        "'<= 21.9' or a mapping with limit / per_protocol / acceptable, found the number 21.9"
    )


def test_wrong_type_fraction_key(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace("      3:", "      three:"))
    assert str(exc) == (
        f"{path}:12 (key 'organs/0/limits/three'): expected a fraction count "
        "(a whole number >= 1) or 'any', found 'three'"
    )


def test_malformed_condition(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace('"<= 21.9"', '"=< 21.9"'))
    assert str(exc) == (
        f"{path}:13 (key 'organs/0/limits/3/D0.03cc[Gy]'): malformed condition '=< 21.9': "
        "expected an operator (<=, <, >=, >) and a number, e.g. '<= 21.9'"
    )


def test_missing_source(tmp_path):
    text = HEAD + ORGAN.replace("    source: *doc\n", "")
    path, exc = error(tmp_path, text)
    assert str(exc) == (
        f"{path}:12 (key 'organs/0/limits/3/D0.03cc[Gy]'): no source: give 'source' "
        "(document, and table or section) here or on the enclosing section"
    )


def test_missing_confidence(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace("    confidence: secondary\n", ""))
    assert str(exc) == (
        f"{path}:12 (key 'organs/0/limits/3/D0.03cc[Gy]'): no confidence: give "
        "'confidence: verified | secondary | unverified' here or on the enclosing section"
    )


def test_bad_confidence(tmp_path):
    path, exc = error(tmp_path, HEAD + ORGAN.replace("confidence: secondary", "confidence: high"))
    assert str(exc) == (
        f"{path}:10 (key 'organs/0/confidence'): expected one of verified, secondary, "
        "unverified, found 'high'"
    )


def test_object_tag_refused(tmp_path):
    text = HEAD + "notes: !!python/object/apply:os.system ['echo hi']\n"
    path, exc = error(tmp_path, text)
    assert str(exc) == (
        f"{path}:7: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed: "
        "constraint files hold plain data only"
    )


def test_custom_tag_refused(tmp_path):
    path, exc = error(tmp_path, HEAD + "notes: !include other.yaml\n")
    assert str(exc) == (
        f"{path}:7: YAML tag '!include' is not allowed: constraint files hold plain data only"
    )


def test_duplicate_key_refused(tmp_path):
    text = HEAD + ORGAN + '        D0.03cc[Gy]: "<= 30"\n'
    path, exc = error(tmp_path, text)
    assert str(exc) == f"{path}:15: duplicate key 'D0.03cc[Gy]' (first at line 13)"


def test_missing_required_top_key(tmp_path):
    path, exc = error(tmp_path, HEAD.replace("title: Test protocol\n", ""))
    assert str(exc) == f"{path}:1: missing key 'title'"


def test_unquoted_version(tmp_path):
    path, exc = error(tmp_path, HEAD.replace('version: "1"', "version: 1.0"))
    assert str(exc) == (
        f"{path}:2 (key 'version'): expected a string (quote it: \"1.0\"), found the number 1.0"
    )


def test_empty_file(tmp_path):
    path, exc = error(tmp_path, "")
    assert str(exc) == f"{path}: the file is empty"


def test_unknown_site_reference(tmp_path):
    text = HEAD + ORGAN.replace("    limits:", "    required_for_sites: [spine]\n    limits:")
    path, exc = error(tmp_path, text)
    assert str(exc) == (
        f"{path}:11 (key 'organs/0/required_for_sites/0'): unknown site 'spine'; known sites: "
        "none defined under fractionation/sites"
    )


def test_derived_minus_must_name_a_structure(tmp_path):
    text = HEAD + ORGAN.replace("aliases: [cord]}", "aliases: [cord], minus: [Tumour]}")
    _, exc = error(tmp_path, text)
    assert "(key 'organs/0/roi/minus'): unknown structure 'Tumour' in 'minus'" in str(exc)


def test_quality_table_and_lookup(tmp_path):
    text = HEAD + textwrap.dedent("""\
        plan_quality:
          source: *doc
          confidence: secondary
          metrics:
            R50%:
              per_protocol: "<"
              acceptable: "<="
              table:
                - [1.8, 5.9, 7.5]
                - [3.8, 5.5, 6.5]
                - {ptv_cc: 7.4, per_protocol: 5.1, acceptable: 6.0, confidence: unverified}
            CI: {per_protocol: "< 1.2", acceptable: "<= 1.5"}
        """)
    p = load_protocol_file(write(tmp_path, text))
    r50, ci = p.plan_quality.rules
    bands, conf = r50.bands_at(2.8)  # halfway between 1.8 and 3.8
    assert bands.per_protocol.limit == pytest.approx(5.7)
    assert bands.acceptable.limit == pytest.approx(7.0)
    assert bands.per_protocol.op == "<" and bands.acceptable.op == "<="
    assert conf is Confidence.SECONDARY
    assert r50.bands_at(5.6)[1] is Confidence.UNVERIFIED  # rests on the unverified row
    assert r50.bands_at(1.8)[0].per_protocol.limit == 5.9
    with pytest.raises(OutsideTable, match=r"outside the tabulated range 1.8-7.4 cc"):
        r50.bands_at(1.79)
    assert ci.bands_at(100.0)[0].judge(1.2).status is Status.MINOR
    # the label holds the interpolated number; how it was read is said once, in the note
    assert bands.per_protocol.text == "< 5.7" and bands.acceptable.text == "<= 7"
    note = "limits interpolated linearly between the 1.8 and 3.8 cc rows"
    assert r50.interpolation_note(2.8) == note
    assert r50.interpolation_note(3.8) == "" and ci.interpolation_note(100.0) == ""


def test_quality_table_must_increase(tmp_path):
    text = HEAD + textwrap.dedent("""\
        plan_quality:
          source: *doc
          confidence: secondary
          metrics:
            R50%:
              per_protocol: "<"
              acceptable: "<="
              table:
                - [3.8, 5.5, 6.5]
                - [1.8, 5.9, 7.5]
        """)
    path, exc = error(tmp_path, text)
    assert str(exc) == (
        f"{path}:16 (key 'plan_quality/metrics/R50%/table/1'): table rows must have increasing "
        "PTV volumes"
    )


def test_dvh_metric_in_plan_quality_refused(tmp_path):
    text = HEAD + "plan_quality:\n  metrics:\n    V20Gy[%]: {limit: '<= 10'}\n"
    _, exc = error(tmp_path, text)
    assert "(key 'plan_quality/metrics/V20Gy[%]'): V20Gy[%] is a DVH metric" in str(exc)


def test_find_by_id_stem_and_path(tmp_path):
    assert find_protocol("tg101").name == "tg101.yaml"
    assert find_protocol("NRG-BR002").name == "nrg_br002.yaml"
    assert find_protocol("AAPM-TG-101").name == "tg101.yaml"
    path = write(tmp_path, HEAD + ORGAN)
    assert str(find_protocol(path)) == path
    assert load_protocol().id == "NRG-BR002"  # the default
    with pytest.raises(UsageError, match="unknown protocol 'nope'; shipped protocols: "):
        find_protocol("nope")
    with pytest.raises(UsageError, match="protocol file not found"):
        find_protocol(str(tmp_path / "missing.yaml"))


PRIOR = """\
prior_radiation:
  policy: {value: review, source: *doc, confidence: secondary}
  overlap_isodose_pct: {value: PCT, source: *doc, confidence: unverified}
"""


def test_overlap_isodose_is_read_with_its_provenance(tmp_path):
    p = load_protocol_file(write(tmp_path, HEAD + ORGAN + PRIOR.replace("PCT", "80")))
    sv = p.prior_radiation.overlap_isodose_pct
    assert (sv.value, sv.confidence, sv.line) == (80.0, Confidence.UNVERIFIED, 17)
    assert sv.source.document == "Doc A"
    rows = {pv.where: pv.value for pv in p.provenance()}
    assert rows["prior_radiation/overlap_isodose_pct"] == "80.0"


@pytest.mark.parametrize(
    ("pct", "expected"),
    [
        ("0", "expected a positive number, found 0"),
        ("120", "expected a percentage of the prescription in (0, 100], found 120"),
    ],
)
def test_overlap_isodose_outside_0_100_is_refused(tmp_path, pct, expected):
    path, exc = error(tmp_path, HEAD + ORGAN + PRIOR.replace("PCT", pct))
    assert str(exc) == f"{path}:17 (key 'prior_radiation/overlap_isodose_pct/value'): {expected}"
