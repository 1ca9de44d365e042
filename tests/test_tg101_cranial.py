"""TG-101's cranial rows (optic pathway, cochlea, brainstem), the smaller airways and the renal
hilum in constraints/tg101.yaml: each value against the TG-101 Table III transcription
(sbrt_oar_and_conformity.md section 1a: totals, point maximum as D0.035cc, "less than V cc" as
``D<V>cc[Gy] <= D``, every value secondary), the organs optional, their names matched without
taking another organ's ROI, and a brainstem over its 3-fraction point maximum judged end to end."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rtqa.check import CheckOptions, run_check
from rtqa.model import ContourPlane, PlanarPolygon, Roi, Status
from rtqa.protocol import load_protocol, match_protocol
from rtqa.protocol.matching import MatchKind
from rtqa.protocol.model import Confidence
from rtqa.synthetic.cases import spine_course, z_cylinder
from rtqa.synthetic.spec import CaseSpec, RoiSpec
from rtqa.synthetic.write import write_case

#: organ -> fraction count -> metric -> limit as written; TG-101 Table III totals
TABLE = {
    "Brainstem": {  # <0.5 cc: 10 / 18 / 23 Gy; max point 15 / 23.1 / 31 Gy
        1: {"D0.5cc[Gy]": "<= 10", "D0.035cc[Gy]": "<= 15"},
        3: {"D0.5cc[Gy]": "<= 18", "D0.035cc[Gy]": "<= 23.1"},
        5: {"D0.5cc[Gy]": "<= 23", "D0.035cc[Gy]": "<= 31"},
    },
    **{
        name: {  # optic pathway, <0.2 cc: 8 / 15.3 / 23 Gy; max point 10 / 17.4 / 25 Gy
            1: {"D0.2cc[Gy]": "<= 8", "D0.035cc[Gy]": "<= 10"},
            3: {"D0.2cc[Gy]": "<= 15.3", "D0.035cc[Gy]": "<= 17.4"},
            5: {"D0.2cc[Gy]": "<= 23", "D0.035cc[Gy]": "<= 25"},
        }
        for name in ("OpticChiasm", "OpticNrv_L", "OpticNrv_R")
    },
    **{
        name: {  # cochlea: max point only, 9 / 17.1 / 25 Gy
            1: {"D0.035cc[Gy]": "<= 9"},
            3: {"D0.035cc[Gy]": "<= 17.1"},
            5: {"D0.035cc[Gy]": "<= 25"},
        }
        for name in ("Cochlea_L", "Cochlea_R")
    },
    "AirWay_Dist": {  # bronchus, smaller airways, <0.5 cc: 12.4 / 18.9 / 21; max 13.3 / 23.1 / 33
        1: {"D0.5cc[Gy]": "<= 12.4", "D0.035cc[Gy]": "<= 13.3"},
        3: {"D0.5cc[Gy]": "<= 18.9", "D0.035cc[Gy]": "<= 23.1"},
        5: {"D0.5cc[Gy]": "<= 21", "D0.035cc[Gy]": "<= 33"},
    },
    **{
        name: {  # renal hilum / vascular trunk: < 2/3 of the volume above 10.6 / 18.6 / 23 Gy
            1: {"V10.6Gy[%]": "<= 66.67"},
            3: {"V18.6Gy[%]": "<= 66.67"},
            5: {"V23Gy[%]": "<= 66.67"},
        }
        for name in ("Kidney_Hilum_L", "Kidney_Hilum_R")
    },
}


@pytest.fixture(scope="module")
def tg101():
    return load_protocol("tg101")


@pytest.mark.parametrize("organ", sorted(TABLE))
def test_limits_are_the_tg101_table(tg101, organ):
    o = tg101.organ(organ)
    assert o.fraction_counts == (1, 3, 5)
    for fx, want in TABLE[organ].items():
        limits = o.limits_for(fx)
        assert {str(lim.metric): lim.conditions for lim in limits} == {
            metric: {"limit": cond} for metric, cond in want.items()
        }
        for lim in limits:
            assert lim.fractions == fx
            assert lim.confidence is Confidence.SECONDARY
            assert lim.source.document.startswith("AAPM TG-101 (Benedict et al.")
            assert lim.source.table == "III"


@pytest.mark.parametrize("organ", sorted(TABLE))
def test_new_organs_are_optional(tg101, organ):
    o = tg101.organ(organ)
    assert not o.required and o.required_for_sites == () and o.sites == ()
    assert not o.is_required(["spine", "central_lung", "cns"])


def test_description_names_only_the_cord_subvolume_as_left_out(tg101):
    text = " ".join(tg101.description.split())
    assert "Cranial organs (optic pathway, cochlea, brainstem), smaller airways" not in text
    assert "Not encoded: the cord sub-volume row" in text
    assert "needs that sub-volume as a structure of its own, and plans do not carry one" in text


def _square(number: int, name: str) -> Roi:
    ring = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    planes = tuple(
        ContourPlane(2.5 * k, (PlanarPolygon(ring + 20.0 * number),), 1) for k in range(3)
    )
    return Roi(number, name, "ORGAN", planes=planes)


def _matched(tg101, names: list[str]) -> dict[str, str]:
    """protocol organ -> the ROI name it matched, for a structure set of ``names``."""
    result = match_protocol(tg101, [_square(i + 1, n) for i, n in enumerate(names)])
    for m in result.organs.values():
        assert m.kind is not MatchKind.AMBIGUOUS, m.describe()
    return {k: m.roi.name for k, m in result.organs.items() if m.roi is not None}


def test_cranial_structure_set_matches_each_organ_once(tg101):
    names = [
        "Brainstem",
        "SpinalCord",
        "OpticChiasm",
        "OpticNrv_L",
        "OpticNrv_R",
        "Cochlea_L",
        "Cochlea_R",
        "Brainstem_PRV03",
    ]
    assert _matched(tg101, names) == {
        "Brainstem": "Brainstem",
        "SpinalCord": "SpinalCord",
        "OpticChiasm": "OpticChiasm",
        "OpticNrv_L": "OpticNrv_L",
        "OpticNrv_R": "OpticNrv_R",
        "Cochlea_L": "Cochlea_L",
        "Cochlea_R": "Cochlea_R",
    }


@pytest.mark.parametrize(
    ("roi", "organ"),
    [
        ("Brain Stem", "Brainstem"),
        ("BRAINSTEM", "Brainstem"),
        ("Chiasm", "OpticChiasm"),
        ("Left Optic Nerve", "OpticNrv_L"),
        ("OpticNerve_R", "OpticNrv_R"),
        ("Cochlea Lt", "Cochlea_L"),
        ("Right Cochlea", "Cochlea_R"),
        ("Kidney_Hilum_L", "Kidney_Hilum_L"),
        ("Renal Hilum Rt", "Kidney_Hilum_R"),
        ("Airway_Dist", "AirWay_Dist"),
        ("smaller airways", "AirWay_Dist"),
    ],
)
def test_aliases_take_one_organ_only(tg101, roi, organ):
    assert _matched(tg101, [roi]) == {organ: roi}


@pytest.mark.parametrize(
    ("roi", "organs", "why"),
    [
        ("Cochlea", ("Cochlea_L", "Cochlea_R"), "laterality differs"),
        ("OpticNrv", ("OpticNrv_L", "OpticNrv_R"), "laterality differs"),
        ("Kidney_Hilums", ("Kidney_Hilum_L", "Kidney_Hilum_R"), None),
        ("Brainstem_Core", ("Brainstem",), None),
        ("Brainstem_PRV03", ("Brainstem",), "is a PRV; map it explicitly to use it"),
    ],
)
def test_names_without_the_rows_structure_are_not_taken(tg101, roi, organs, why):
    """A cochlea or optic nerve without laterality, both hila in one structure, a part of the
    brainstem and a PRV are not the structures these rows judge."""
    result = match_protocol(tg101, [_square(1, roi)])
    assert {k for k, m in result.organs.items() if m.roi is not None} == set()
    for organ in organs:
        m = result.organs[organ]
        assert m.kind is MatchKind.NONE
        reasons = [r.reason for r in m.rejected if r.roi_name == roi]
        assert reasons == ([why] if why else [])


def test_smaller_airways_leave_the_large_bronchus_to_the_trachea_row(tg101):
    got = _matched(tg101, ["Trachea", "Bronchus", "AirWay_Dist", "Kidney_Cortex"])
    assert got == {
        "Trachea": "Trachea",
        "Bronchus": "Bronchus",
        "AirWay_Dist": "AirWay_Dist",
        "Kidneys_Cortex": "Kidney_Cortex",
    }
    union = match_protocol(tg101, [_square(1, "Trachea"), _square(2, "Bronchus")])
    assert [p.roi.name for p in union.organs["Trachea"].plus] == ["Bronchus"]


# ---- end to end: a brainstem in the high dose of a 3-fraction plan --------------------------

BRAINSTEM = z_cylinder(0.0, 20.0, 5.0, -5.0, 5.0)  # inside the PTV (r 16 mm, z -13.75..13.75)


def _brainstem_case(root: Path) -> tuple[Path, tuple[float, float]]:
    """spine_3fx's 30 Gy / 3 plan with a 'Brainstem' ROI in the PTV's core; the dose range (Gy)
    over the brainstem from the closed-form dose."""
    course = spine_course("BSTEM3FX", 5.0, datetime(2024, 3, 4, 9, 0))
    course = replace(course, rois=(*course.rois, RoiSpec("Brainstem", BRAINSTEM, "ORGAN")))
    spec = CaseSpec(
        name="bstem",
        patient_id="RTQA-BSTEM",
        patient_name="RTQA^BSTEM",
        birth_date="19600101",
        sex="F",
        courses=(course,),
        protocol="tg101",
        verdict="major: Brainstem over its 3-fraction point maximum",
        summary="x",
    )
    write_case(spec, root)
    g = np.linspace(-1.0, 1.0, 41)
    x, y, z = np.meshgrid(5.0 * g, 20.0 + 5.0 * g, 6.25 * g, indexing="ij")
    inside = x**2 + (y - 20.0) ** 2 <= 25.0
    dose = course.dose.dose_at(x[inside], y[inside], z[inside])
    return root / "bstem", (float(dose.min()), float(dose.max()))


def test_brainstem_over_its_three_fraction_point_maximum_is_a_major_deviation(tmp_path):
    folder, (lo, hi) = _brainstem_case(tmp_path)
    assert 23.1 < lo < hi < lo + 0.5  # the whole brainstem at about 36.5 Gy
    (result,) = run_check([str(folder)], CheckOptions(protocol="tg101"))
    found = {f.metric: f for f in result.findings if f.group == "organ" and f.roi == "Brainstem"}
    assert set(found) == {"D0.5cc[Gy]", "D0.035cc[Gy]"}
    point = found["D0.035cc[Gy]"]
    assert point.status is Status.MAJOR
    assert point.limits == {"limit": "<= 23.1"}
    assert point.confidence == "secondary"
    assert point.unit == "Gy"
    assert lo - 0.1 <= point.value <= hi + 0.1
    assert point.value == pytest.approx(hi, abs=0.1)  # the hottest 0.035 cc: the core's dose
    assert point.margin == pytest.approx(23.1 - point.value)
    assert "exact TG-263 name" in point.match
    small = found["D0.5cc[Gy]"]
    assert small.status is Status.MAJOR and small.limits == {"limit": "<= 18"}
    assert lo - 0.1 <= small.value <= point.value
    # the brainstem is the only deviation (exit 1); the cord, beside it, still passes
    assert [f.roi for f in result.findings if f.status is Status.MAJOR] == ["Brainstem"] * 2
    assert result.exit_code == 1
    cord = [f for f in result.findings if f.group == "organ" and f.roi == "SpinalCord"]
    assert len(cord) == 3 and all(f.status is Status.PASS for f in cord)
