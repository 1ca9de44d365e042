"""Structure matching: TG-263 names, aliases, normalisation, laterality, PRVs, ambiguity,
targets, derived structures and explicit mappings."""

import pytest

from rtqa.model import Roi
from rtqa.protocol.loader import load_protocol_file
from rtqa.protocol.matching import (
    MappingError,
    MatchKind,
    derived_reason,
    load_mapping_file,
    match_protocol,
    match_structure,
    name_key,
    parse_mapping_args,
)
from rtqa.protocol.model import RoiSpec

CORD = RoiSpec(name="SpinalCord", aliases=("cord", "spinal cord"), patterns=(r"^myelon",))
LUNG_L = RoiSpec(name="Lung_L")


def rois(*names, types=None):
    types = types or {}
    return [Roi(i + 1, n, types.get(n, "ORGAN")) for i, n in enumerate(names)]


def test_name_key_normalises_case_punctuation_and_side():
    assert name_key("Spinal Cord") == name_key("SPINAL_CORD") == name_key("spinal-cord")
    assert name_key("SpinalCord").base == "spinalcord"
    assert (
        name_key("Left Lung") == name_key("Lung_L") == name_key("LUNG LT") == name_key("lung-left")
    )
    assert name_key("Lung_R").side == "R"
    assert name_key("Lungs").side is None


@pytest.mark.parametrize(
    ("roi_name", "kind", "how"),
    [
        ("SpinalCord", MatchKind.EXACT, "exact TG-263 name"),
        ("spinal_cord", MatchKind.EXACT, "exact TG-263 name"),
        ("SPINALCORD", MatchKind.EXACT, "exact TG-263 name"),
        ("Cord", MatchKind.ALIAS, "alias 'cord'"),
        ("Myelon T4", MatchKind.PATTERN, "pattern '^myelon'"),
    ],
)
def test_match_forms(roi_name, kind, how):
    m = match_structure("SpinalCord", CORD, rois("Body", roi_name))
    assert (m.roi_name, m.kind, m.how) == (roi_name, kind, how)


def test_laterality():
    m = match_structure("Lung_L", LUNG_L, rois("Right Lung", "Left Lung"))
    assert m.roi_name == "Left Lung"
    assert [r.roi_name for r in m.rejected] == ["Right Lung"]
    assert match_structure("Lung_L", LUNG_L, rois("Lungs", "Lung_R")).roi is None


def test_prv_does_not_match_the_organ():
    m = match_structure("SpinalCord", CORD, rois("SpinalCord_PRV05", "Cord+3mm", "zCord"))
    assert m.roi is None and m.kind is MatchKind.NONE
    reasons = {r.roi_name: r.reason for r in m.rejected}
    assert reasons["SpinalCord_PRV05"] == "is a PRV; map it explicitly to use it"
    assert "derived structure (+)" in reasons["Cord+3mm"]
    assert "'SpinalCord', 'cord', 'spinal cord', pattern '^myelon'" in m.describe()


def test_pattern_does_not_take_a_prv():
    m = match_structure("SpinalCord", CORD, rois("Myelon_PRV"))
    assert m.roi is None
    assert m.rejected[0].reason == "matches pattern '^myelon' but is a PRV"


def test_ambiguous():
    m = match_structure("SpinalCord", CORD, rois("SpinalCord", "spinal cord"))
    assert m.roi is None and m.kind is MatchKind.AMBIGUOUS
    assert m.competitors == ("SpinalCord", "spinal cord")
    assert "--map SpinalCord=NAME" in m.describe()


def test_a_reimport_copy_is_the_same_name():
    # RayStation names a re-imported copy 'SpinalCord (1)': beside 'SpinalCord', which of the
    # two holds the cord is not rtqa's to guess (one may be another organ's contour)
    m = match_structure("SpinalCord", CORD, rois("SpinalCord", "SpinalCord (1)", "Esophagus"))
    assert m.roi is None and m.kind is MatchKind.AMBIGUOUS
    assert m.competitors == ("SpinalCord", "SpinalCord (1)")
    # alone, the copy is the organ's ROI, matched by its name
    m = match_structure("SpinalCord", CORD, rois("Body", "Spinal Cord (1)"))
    assert (m.roi_name, m.kind) == ("Spinal Cord (1)", MatchKind.EXACT)
    # only a number in parentheses at the end is a copy number, not one within the name
    assert name_key("Rib (1)") == name_key("Rib") != name_key("Rib1")
    assert match_structure("SpinalCord", CORD, rois("SpinalCord(1)x")).roi is None


def test_exact_beats_alias_and_reports_the_competitor():
    m = match_structure("SpinalCord", CORD, rois("cord", "SpinalCord"))
    assert (m.roi_name, m.competitors) == ("SpinalCord", ("cord",))


def test_targets_are_not_organs():
    m = match_structure("SpinalCord", CORD, rois("cord", types={"cord": "PTV"}))
    assert m.roi is None
    assert m.rejected[0].reason == "interpreted type PTV is a target"


def test_derived_reason():
    assert derived_reason("SpinalCord_PRV05") == "a PRV"
    assert derived_reason("zPTV_opt") is not None
    assert derived_reason("Lungs~") is not None
    assert derived_reason("Lungs") is None
    assert derived_reason("Femur_Head_R") is None


PROTOCOL = """\
protocol: T
version: "1"
title: t
description: d
sources: [Doc]
targets:
  - roi: {type: PTV}
    checks: [{metric: "V100%[%]", limit: ">= 95", source: Doc, confidence: unverified}]
organs:
  - roi: {name: SpinalCord, aliases: [cord]}
  - roi: {name: Lungs, aliases: [Lung], minus: [GTV, ITV]}
  - roi: {name: External, aliases: [Body], type: EXTERNAL}
"""


@pytest.fixture
def protocol(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(PROTOCOL)
    return load_protocol_file(path)


ROIS = [
    Roi(1, "PTV_30Gy", "PTV"),
    Roi(2, "PTV_L1", "PTV"),
    Roi(3, "zPTV_opt", "PTV"),
    Roi(4, "GTV", "GTV"),
    Roi(5, "SpinalCord", "ORGAN"),
    Roi(6, "cord_PRV", "ORGAN"),
    Roi(7, "Lungs", "ORGAN"),
    Roi(8, "Outline", "EXTERNAL"),
    Roi(9, "PTV2", ""),
]


def test_match_protocol(protocol):
    pm = match_protocol(protocol, ROIS)
    assert [m.roi_name for m in pm.targets["PTV"]] == ["PTV_30Gy", "PTV_L1", "PTV2"]
    assert pm.targets["PTV"][2].how == "name begins with 'PTV' (no interpreted type)"
    assert pm.organs["SpinalCord"].roi_name == "SpinalCord"
    lungs = pm.organs["Lungs"]
    assert lungs.roi_name == "Lungs" and [m.roi_name for m in lungs.minus] == ["GTV"]
    assert pm.organs["External"].how == "interpreted type EXTERNAL"
    assert set(pm.unmatched) == {"zPTV_opt", "cord_PRV"}


def test_mapping_overrides(protocol):
    pm = match_protocol(protocol, ROIS, {"SpinalCord": "cord_PRV", "PTV": ("PTV_L1",)})
    cord = pm.organs["SpinalCord"]
    assert (cord.roi_name, cord.kind, cord.how) == (
        "cord_PRV",
        MatchKind.MAPPING,
        "mapping SpinalCord=cord_PRV",
    )
    assert [m.roi_name for m in pm.targets["PTV"]] == ["PTV_L1"]


def test_mapping_errors(protocol):
    with pytest.raises(MappingError, match="no ROI named 'nothing'"):
        match_protocol(protocol, ROIS, {"SpinalCord": "nothing"})
    with pytest.raises(MappingError, match="'Heart' is not a structure of protocol T"):
        match_protocol(protocol, ROIS, {"Heart": "SpinalCord"})


def test_parse_mapping_args_and_file(tmp_path):
    assert parse_mapping_args(["SpinalCord=cord_PRV", "PTV=PTV_T8, PTV_L1"]) == {
        "SpinalCord": ("cord_PRV",),
        "PTV": ("PTV_T8", "PTV_L1"),
    }
    with pytest.raises(MappingError, match="expected PROTOCOL_NAME=ROI_NAME"):
        parse_mapping_args(["SpinalCord"])
    text_file = tmp_path / "map.txt"
    text_file.write_text("# mapping\nSpinalCord=cord_PRV\n")
    assert load_mapping_file(text_file) == {"SpinalCord": ("cord_PRV",)}
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("SpinalCord: cord_PRV\nPTV: [PTV_T8, PTV_L1]\n")
    assert load_mapping_file(yaml_file) == {
        "SpinalCord": ("cord_PRV",),
        "PTV": ("PTV_T8", "PTV_L1"),
    }


def test_a_mapping_file_names_an_roi_by_number(tmp_path):
    """'#' opens a comment at a line's start or after a space, not in 'SpinalCord=#4'; YAML
    needs the number quoted."""
    text_file = tmp_path / "map.txt"
    text_file.write_text("# by number\nSpinalCord=#4  # the real cord\nEsophagus=Esoph#2\n")
    assert load_mapping_file(text_file) == {"SpinalCord": ("#4",), "Esophagus": ("Esoph#2",)}
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("SpinalCord: '#4'  # the real cord\n")
    assert load_mapping_file(yaml_file) == {"SpinalCord": ("#4",)}
