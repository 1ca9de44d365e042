"""Every shipped constraint file loads, and every number in it has a source and a confidence."""

import pytest

from rtqa.errors import ConstraintFileError
from rtqa.protocol.loader import load_protocol, load_protocol_file, shipped_protocol_files
from rtqa.protocol.model import Confidence
from rtqa.protocol.yaml_lines import read_yaml

FILES = shipped_protocol_files()
PROVENANCE_FREE = {"grid_covers_structures", "heterogeneity_correction", "policy"}


def test_the_expected_files_ship():
    stems = {f.stem for f in FILES}
    assert {"nrg_br002", "tg101", "archer", "boss", "palliative_bone", "breast_chestwall"} <= stems


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_number_has_source_and_confidence(path):
    protocol = load_protocol_file(path)
    items = list(protocol.provenance())
    assert items
    for item in items:
        if item.where.rsplit("/", 1)[-1] in PROVENANCE_FREE:
            continue  # settings, not numbers
        assert item.source is not None and item.source.document.strip(), item.where
        assert isinstance(item.confidence, Confidence), item.where


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_raw_numbers_all_reach_the_model(path):
    """Count numeric leaves in the YAML and check none escapes validation unsourced: every
    numeric leaf sits under a regimen, table row or sourced value (or is a fraction selector)."""
    data = read_yaml(path)
    numbers = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")
        elif isinstance(node, int | float) and not isinstance(node, bool):
            numbers.append(where)

    walk(data, "")
    allowed_parents = ("regimens", "table", "value", "alpha_beta", "fractions")
    for where in numbers:
        assert any(f"/{p}/" in where or where.endswith(f"/{p}") for p in allowed_parents), where


def test_a_file_with_an_unsourced_number_fails(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        'protocol: X\nversion: "1"\ntitle: t\ndescription: d\nsources: [Doc]\n'
        "fractionation:\n  complete_within_days: 21\n"
    )
    with pytest.raises(ConstraintFileError, match=r"bad.yaml:7 \(key 'fractionation/complete"):
        load_protocol_file(path)


def test_nrg_br002_content():
    p = load_protocol("NRG-BR002")
    regimens = {(r.site, r.total_gy, r.fractions) for r in p.fractionation.regimens}
    assert ("spine", 30.0, 3) in regimens and ("central_lung", 50.0, 5) in regimens
    assert p.fractionation.complete_within_days.value == 21.0
    assert p.fractionation.complete_within_days.confidence is Confidence.VERIFIED
    esophagus = {str(lim.metric): lim for lim in p.organ("Esophagus").limits_for(5)}
    assert esophagus["D0.03cc[Gy]"].conditions == {"limit": "<= 35"}
    cord3 = {str(lim.metric): lim for lim in p.organ("SpinalCord").limits_for(3)}
    assert cord3["D0.03cc[Gy]"].conditions == {"limit": "<= 21.9"}
    lungs5 = {str(lim.metric): lim for lim in p.organ("Lungs").limits_for(5)}
    assert lungs5["CV12.5Gy[cc]"].conditions == {"limit": ">= 1500"}
    assert p.organ("SpinalCord").is_required(["spine"])
    d2cm = next(q for q in p.plan_quality.rules if str(q.metric) == "D2cm[%]")
    assert d2cm.volume_range_cc == (1.8, 163.0)


def test_tg101_parallel_and_three_fraction_values():
    p = load_protocol("tg101")
    lungs3 = {str(lim.metric) for lim in p.organ("Lungs").limits_for(3)}
    assert lungs3 == {"CV11.6Gy[cc]", "CV12.4Gy[cc]"}
    liver5 = {str(lim.metric) for lim in p.organ("Liver").limits_for(5)}
    assert liver5 == {"CV21Gy[cc]"}
    assert {str(lim.metric) for lim in p.organ("SpinalCord").limits_for(1)} == {
        "D0.35cc[Gy]",
        "D1.2cc[Gy]",
        "D0.035cc[Gy]",
    }


def test_boss_prior_radiation():
    p = load_protocol("boss")
    pr = p.prior_radiation
    assert pr.policy.value == "cumulative"
    assert pr.alpha_beta_for("SpinalCord").value == 2.0
    assert pr.alpha_beta_for("Esophagus").value == 3.0
    (cum,) = pr.cumulative_eqd2["SpinalCord"]
    assert cum.conditions == {"limit": "<= 70"}
    assert pr.course_eqd2["SpinalCord"][0].conditions == {"limit": "<= 25"}
    assert pr.min_interval_months.value == 5.0
    assert (p.fractionation.min_targets.value, p.fractionation.max_targets.value) == (1, 3)


def test_archer_profile():
    p = load_protocol("archer")
    assert p.fractionation.max_targets.value == 5
    assert [s.value for s in p.fractionation.excluded_sites] == ["cns"]


@pytest.mark.parametrize("protocol", ["nrg_br002", "tg101"])
@pytest.mark.parametrize(
    ("spill_pct", "status"), [(14.9, "pass"), (15.0, "minor"), (20.0, "minor"), (20.1, "major")]
)
def test_high_dose_spillage_bands(protocol, spill_pct, status):
    from rtqa.protocol.judging import judge_limit
    from rtqa.protocol.model import Limit

    (rule,) = [
        r for r in load_protocol(protocol).plan_quality.rules if r.metric.canonical == "Spill105[%]"
    ]
    bands, conf = rule.bands_at(30.0)
    lim = Limit(rule.metric, bands, rule.source, conf, rule.line)
    f = judge_limit(lim, None, group="quality", roi="PTV", match="", case_id=None,
                    quality={"Spill105[%]": spill_pct})  # fmt: skip
    assert (f.status.value, f.value, f.unit) == (status, spill_pct, "%")
    assert f.limits == {"per_protocol": "< 15", "acceptable": "<= 20"}
