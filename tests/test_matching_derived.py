"""Derived (TG-263) structure names at every matching tier, the breast 'PTV!' alias, and
evaluation/cropped copies and identical re-import copies of a target not counted as targets of
their own."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.model import ContourPlane, PlanarPolygon, Roi
from rtqa.protocol import load_protocol, match_protocol
from rtqa.protocol.matching import (
    MatchKind,
    copy_base,
    derived_reason,
    match_structure,
    match_type,
    same_contours,
    variant_base,
)
from rtqa.protocol.model import RoiSpec
from rtqa.protocol.prescription import dose_from_name

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def rois(*names: str, rtype: str = "ORGAN") -> list[Roi]:
    return [Roi(number=i + 1, name=n, interpreted_type=rtype) for i, n in enumerate(names)]


@pytest.fixture(scope="module")
def nrg():
    return load_protocol("nrg_br002")


@pytest.fixture(scope="module")
def breast():
    return load_protocol("breast_chestwall")


# ----------------------------------------------------------------------------- organs


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("SpinalCord~", "partial structure"),
        ("_Cord", "planning-aid"),
        ("_SpinalCord", "planning-aid"),
        ("SpinalCord!", "'!' only for an evaluation PTV"),
        ("SpinalCord^", "qualified"),
    ],
)
def test_derived_name_matches_no_tier(nrg, name, why):
    m = match_protocol(nrg, rois(name)).organs["SpinalCord"]
    assert m.roi is None and m.kind is MatchKind.NONE
    (rej,) = [r for r in m.rejected if r.roi_name == name]
    assert why in rej.reason


def test_whole_cord_chosen_over_partial_and_prv(nrg):
    m = match_protocol(nrg, rois("SpinalCord~", "SpinalCord", "SpinalCord_PRV05")).organs[
        "SpinalCord"
    ]
    assert m.kind is MatchKind.EXACT and m.roi_name == "SpinalCord"
    assert m.competitors == ()
    assert {r.roi_name for r in m.rejected} == {"SpinalCord~", "SpinalCord_PRV05"}


def test_plain_spellings_still_match(nrg):
    for name, kind in [
        ("Spinal Cord", MatchKind.EXACT),
        ("SPINAL_CORD", MatchKind.EXACT),
        ("Spinal-Cord", MatchKind.EXACT),  # a hyphen between words is spelling, not a crop
        ("cord", MatchKind.ALIAS),
    ]:
        m = match_protocol(nrg, rois(name)).organs["SpinalCord"]
        assert (m.roi_name, m.kind) == (name, kind)


def test_lungs_bang_is_not_lungs(nrg):
    assert "Lungs" in match_protocol(nrg, []).organs
    m = match_protocol(nrg, rois("Lungs!")).organs["Lungs"]
    assert m.roi is None
    assert derived_reason("Lungs!") == (
        "marked '!' (TG-263 uses '!' only for an evaluation PTV, PTV!)"
    )
    assert derived_reason("PTV!") == "an evaluation (segmented) target (TG-263 PTV!)"


def test_raw_alias_takes_derived_name_as_written_only():
    spec = RoiSpec(name="SpinalCord", aliases=("Cord~",))
    m = match_structure("SpinalCord", spec, rois("cord~"))
    assert (m.roi_name, m.kind, m.how) == ("cord~", MatchKind.ALIAS, "alias 'Cord~'")
    # the derived alias does not normalise to 'cord'
    assert match_structure("SpinalCord", spec, rois("Cord")).roi is None
    assert match_structure("SpinalCord", spec, rois("Cord_~")).roi is None


def test_mapping_still_takes_a_derived_name(nrg):
    m = match_protocol(nrg, rois("SpinalCord~"), {"SpinalCord": "SpinalCord~"}).organs["SpinalCord"]
    assert (m.roi_name, m.kind) == ("SpinalCord~", MatchKind.MAPPING)


# ----------------------------------------------------------------------------- breast PTV_Eval


def test_breast_plain_ptv_is_not_ptv_eval(breast):
    (m,) = match_protocol(breast, rois("PTV", rtype="PTV")).targets["PTV_Eval"]
    assert m.roi is None and m.kind is MatchKind.NONE


@pytest.mark.parametrize(
    ("names", "roi", "kind"),
    [
        (("PTV", "PTV!"), "PTV!", MatchKind.ALIAS),
        (("PTV", "ptv!"), "ptv!", MatchKind.ALIAS),
        (("PTV", "PTV_Eval"), "PTV_Eval", MatchKind.EXACT),
        (("PTV", "PTV_DVH"), "PTV_DVH", MatchKind.ALIAS),
    ],
)
def test_breast_eval_ptv_found(breast, names, roi, kind):
    (m,) = match_protocol(breast, rois(*names, rtype="PTV")).targets["PTV_Eval"]
    assert (m.roi_name, m.kind) == (roi, kind)


def test_breast_cropped_eval_not_taken(breast):
    (m,) = match_protocol(breast, rois("PTV_Eval-3mm", rtype="PTV")).targets["PTV_Eval"]
    assert m.roi is None
    assert [r.roi_name for r in m.rejected] == ["PTV_Eval-3mm"]


# ----------------------------------------------------------------------------- target copies


def test_variant_base():
    assert variant_base("PTV_7000-05") == "PTV_7000"
    assert variant_base("PTV-3mm") == "PTV"
    assert variant_base("PTV!") == "PTV"
    assert variant_base("PTV_Eval") == "PTV"
    assert variant_base("PTVeval") == "PTV"
    assert variant_base("PTV_30Gy") is None
    assert variant_base("PTV_High^Boost") is None
    assert variant_base("PTV") is None


@pytest.mark.parametrize("copy_name", ["PTV_Eval", "PTV-3mm", "PTV!", "PTV_30Gy-03"])
def test_copy_of_the_only_target_is_not_a_target(nrg, copy_name):
    found = match_protocol(nrg, rois("PTV_30Gy", copy_name, rtype="PTV")).targets["PTV"]
    (m,) = found
    assert m.roi_name == "PTV_30Gy" and m.kind is MatchKind.TYPE
    assert f"copy '{copy_name}' is not counted as a separate target" in m.how
    assert [r.roi_name for r in m.rejected] == [copy_name]


def test_copy_named_after_its_target(nrg):
    found = match_protocol(nrg, rois("PTV_7000", "PTV_7000-05", "PTV_5000", rtype="PTV"))
    ms = found.targets["PTV"]
    assert [m.roi_name for m in ms] == ["PTV_7000", "PTV_5000"]
    assert [r.roi_name for r in ms[0].rejected] == ["PTV_7000-05"]
    assert ms[1].rejected == ()


@pytest.mark.parametrize(
    "names",
    [
        ("PTV_T8", "PTV_L1", "PTV_Eval"),  # which target it copies is unknown: still a target
        ("PTV_T8", "PTV_L1-03"),  # the only contour of L1 is cropped: still a target
        ("PTV-3mm",),  # no original: still the target
        ("PTV_High", "PTV_High^Boost"),  # TG-263 custom qualifier: a target of its own
    ],
)
def test_copy_without_identifiable_original_stays_a_target(nrg, names):
    ms = match_protocol(nrg, rois(*names, rtype="PTV")).targets["PTV"]
    assert [m.roi_name for m in ms] == list(names)


def test_minus_still_subtracts_every_ptv():
    # 'Body minus PTV' keeps subtracting copies too (default copies=True)
    ms = match_type("PTV", "PTV", rois("PTV_30Gy", "PTV_Eval", rtype="PTV"))
    assert [m.roi_name for m in ms] == ["PTV_30Gy", "PTV_Eval"]


# ----------------------------------------------------------------------------- end to end


def _case(tmp_path: Path, *specs: str) -> Path:
    """spine_3fx with ROIs renamed (``old=new``) or copied (``+old=new``)."""
    dst = tmp_path / "case"
    shutil.copytree(SAMPLES / "spine_3fx", dst)
    (rs,) = dst.glob("RS*.dcm")
    ds = pydicom.dcmread(rs)
    for spec in specs:
        dup = spec.startswith("+")
        old, new = spec.lstrip("+").split("=")
        (r,) = [x for x in ds.StructureSetROISequence if x.ROIName == old]
        if not dup:
            r.ROIName = new
            continue
        num = max(int(x.ROINumber) for x in ds.StructureSetROISequence) + 1
        r2 = copy.deepcopy(r)
        r2.ROINumber, r2.ROIName = num, new
        ds.StructureSetROISequence.append(r2)
        for seq, attr in (("ROIContourSequence", None), ("RTROIObservationsSequence", "obs")):
            (item,) = [
                x for x in getattr(ds, seq) if int(x.ReferencedROINumber) == int(r.ROINumber)
            ]
            item2 = copy.deepcopy(item)
            item2.ReferencedROINumber = num
            if attr:
                item2.ObservationNumber = num
            getattr(ds, seq).append(item2)
    ds.save_as(rs)
    return dst


def _check(case: Path):
    res = CliRunner().invoke(cli, ["check", str(case), "--format", "json"], catch_exceptions=False)
    return res.exit_code, json.loads(res.stdout)


def test_cli_partial_cord_alone_is_not_judged_as_the_cord(tmp_path):
    code, data = _check(_case(tmp_path, "SpinalCord=SpinalCord~"))
    assert code == 4
    (f,) = [f for f in data["findings"] if f["status"] == "not_evaluable"]
    assert f["rule"] == "match" and "'SpinalCord~'" in f["message"]
    assert not [
        f
        for f in data["findings"]
        if f["group"] == "organ" and f["status"] == "pass" and f["roi"] == "SpinalCord~"
    ]


def test_cli_cord_and_partial_cord_judges_the_cord(tmp_path):
    code, data = _check(_case(tmp_path, "+SpinalCord=SpinalCord~"))
    assert code == 0, data["verdict"]
    cord = [f for f in data["findings"] if f["group"] == "organ" and f["roi"] == "SpinalCord"]
    assert {f["metric"] for f in cord} == {"D0.03cc[Gy]", "D0.35cc[Gy]", "D1.2cc[Gy]"}
    assert all(f["match"].startswith("SpinalCord -> 'SpinalCord' (exact") for f in cord)


@pytest.mark.parametrize("copy_name", ["PTV_Eval", "PTV-3mm"])
def test_cli_copy_of_ptv_is_one_target(tmp_path, copy_name):
    code, data = _check(_case(tmp_path, f"+PTV_30Gy={copy_name}"))
    assert code == 0, data["verdict"]
    counts = [f for f in data["findings"] if f["metric"] == "targets"]
    assert {f["rule"] for f in counts} == {"min_targets", "max_targets"}
    assert all(f["value"] == 1 and f["status"] == "pass" for f in counts)
    targets = [f for f in data["findings"] if f["group"] == "target"]
    assert targets and {f["roi"] for f in targets} == {"PTV_30Gy"}
    assert all(f"copy '{copy_name}'" in f["match"] for f in targets)


# ----------------------------------------------------------------------------- re-import copies


def _square_roi(number: int, name: str, side_mm: float = 10.0, planes: int = 3) -> Roi:
    ring = np.array([[0.0, 0.0], [side_mm, 0.0], [side_mm, side_mm], [0.0, side_mm]])
    stack = tuple(ContourPlane(2.5 * k, (PlanarPolygon(ring.copy()),), 1) for k in range(planes))
    return Roi(number=number, name=name, interpreted_type="PTV", planes=stack)


def test_copy_base_and_the_dose_in_a_copied_name():
    assert copy_base("PTV_30Gy (1)") == "PTV_30Gy"
    assert copy_base("PTV (12) ") == "PTV"
    assert copy_base("PTV_30Gy") is None
    assert dose_from_name("PTV_30Gy (1)") == 30.0
    assert dose_from_name("PTV_3000 (2)") == 30.0
    assert dose_from_name("PTV (1)") is None


def test_reimport_copy_with_identical_contours_is_the_target(nrg):
    found = [_square_roi(1, "PTV_30Gy"), _square_roi(2, "PTV_30Gy (1)")]
    (m,) = match_protocol(nrg, found).targets["PTV"]
    assert m.roi_name == "PTV_30Gy" and m.copies == (2,)
    assert "re-import copy 'PTV_30Gy (1)', with identical contours" in m.how
    assert [r.roi_name for r in m.rejected] == ["PTV_30Gy (1)"]


def test_reimport_copy_with_other_contours_is_a_target_of_its_own(nrg):
    found = [_square_roi(1, "PTV_30Gy"), _square_roi(2, "PTV_30Gy (1)", side_mm=10.05)]
    assert not same_contours(*found)
    ms = match_protocol(nrg, found).targets["PTV"]
    assert [m.roi_name for m in ms] == ["PTV_30Gy", "PTV_30Gy (1)"]
    assert all(m.copies == () for m in ms)
    assert "re-import copy of 'PTV_30Gy', but the contours differ" in ms[1].how


def test_same_contours_within_a_hundredth_of_a_mm():
    a = _square_roi(1, "A")
    assert same_contours(a, _square_roi(2, "B", side_mm=10.009))
    assert not same_contours(a, _square_roi(2, "B", side_mm=10.011))
    assert not same_contours(a, _square_roi(2, "B", planes=4))
    assert not same_contours(Roi(number=1, name="A"), Roi(number=2, name="B"))


def test_cli_reimport_copy_of_ptv_is_one_target(tmp_path):
    code, data = _check(_case(tmp_path, "+PTV_30Gy=PTV_30Gy (1)"))
    assert code == 0, data["verdict"]
    counts = [f for f in data["findings"] if f["metric"] == "targets"]
    assert [f["value"] for f in counts] == [1, 1]
    targets = [f for f in data["findings"] if f["group"] == "target"]
    assert {f["roi"] for f in targets} == {"PTV_30Gy"}
    assert all("re-import copy 'PTV_30Gy (1)'" in f["match"] for f in targets)


def test_cli_dose_reference_on_the_copy_prescribes_the_target(tmp_path):
    case = _case(tmp_path, "PTV_30Gy=PTV", "+PTV=PTV (1)")
    ss = pydicom.dcmread(next(case.glob("RS*.dcm")))
    copy_number = max(int(x.ROINumber) for x in ss.StructureSetROISequence)
    (rp,) = case.glob("RP*.dcm")
    plan = pydicom.dcmread(rp)
    for ref in plan.DoseReferenceSequence:
        ref.ReferencedROINumber = copy_number
    plan.save_as(rp)
    code, data = _check(case)
    assert code == 0, data["verdict"]
    (rx,) = [f for f in data["findings"] if f["rule"] == "prescription"]
    assert rx["roi"] == "PTV" and rx["value"] == pytest.approx(30.0)
    assert f"points to ROI {copy_number}, its re-import copy" in rx["message"]
    assert not [f for f in data["findings"] if f["rule"] == "prescribed_roi"]


def test_organ_and_its_identical_reimport_copy_is_no_ambiguity(nrg):
    cord, copy_ = _square_roi(1, "SpinalCord (1)"), _square_roi(2, "SpinalCord")
    for roi in (cord, copy_):
        roi.interpreted_type = "ORGAN"
    m = match_protocol(nrg, [cord, copy_]).organs["SpinalCord"]
    assert m.kind is MatchKind.EXACT and m.roi_name == "SpinalCord"
    (rej,) = [r for r in m.rejected if r.roi_name == "SpinalCord (1)"]
    assert rej.reason == "holds the same contours as 'SpinalCord', judged in its place"


def test_organ_and_a_differing_reimport_copy_stay_ambiguous(nrg):
    found = [_square_roi(1, "SpinalCord"), _square_roi(2, "SpinalCord (1)", side_mm=12.0)]
    for roi in found:
        roi.interpreted_type = "ORGAN"
    m = match_protocol(nrg, found).organs["SpinalCord"]
    assert m.kind is MatchKind.AMBIGUOUS and m.competitors == ("SpinalCord", "SpinalCord (1)")


def test_cli_cord_with_its_identical_reimport_copy_is_judged(tmp_path):
    code, data = _check(_case(tmp_path, "+SpinalCord=SpinalCord (1)"))
    assert code == 0, data["verdict"]
    cord = [f for f in data["findings"] if f["group"] == "organ" and f["roi"] == "SpinalCord"]
    assert {f["metric"] for f in cord} == {"D0.03cc[Gy]", "D0.35cc[Gy]", "D1.2cc[Gy]"}
    assert all(f["status"] == "pass" for f in cord)
