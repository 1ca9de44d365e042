"""The committed sample data is exactly what the generator writes, and the batch generator
writes the cases (and the share of corrupt ones) it promises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from rtqa.cli import cli
from rtqa.synthetic import CASE_NAMES
from rtqa.synthetic.__main__ import main
from rtqa.synthetic.batch import corrupt, corrupt_count, plan_batch

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample_data")
    assert main([str(out)]) == 0
    return out


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def differing_keywords(a: pydicom.Dataset, b: pydicom.Dataset) -> list[str]:
    tags = set(a.keys()) | set(b.keys())
    return sorted(str(a.get(t, b.get(t)).keyword or t) for t in tags if a.get(t) != b.get(t))


def test_case_folders_are_the_contracted_ones(regenerated):
    folders = sorted(p.name for p in SAMPLE_DATA.iterdir() if p.is_dir())
    assert folders == sorted(CASE_NAMES)
    assert files(regenerated) == files(SAMPLE_DATA)


def test_regenerated_datasets_equal_the_committed_ones(regenerated):
    compared = 0
    for rel in files(SAMPLE_DATA):
        if not rel.endswith(".dcm"):
            continue
        new = pydicom.dcmread(regenerated / rel)
        old = pydicom.dcmread(SAMPLE_DATA / rel)
        assert differing_keywords(new.file_meta, old.file_meta) == [], rel
        assert differing_keywords(new, old) == [], rel
        if "PixelData" in old:
            assert np.array_equal(new.pixel_array, old.pixel_array), rel
        assert (regenerated / rel).read_bytes() == (SAMPLE_DATA / rel).read_bytes(), rel
        compared += 1
    assert compared > 7 * 5


def test_readme_is_regenerated_verbatim(regenerated):
    assert (regenerated / "README.md").read_text() == (SAMPLE_DATA / "README.md").read_text()


def test_sample_data_stays_small():
    total = sum(p.stat().st_size for p in SAMPLE_DATA.rglob("*") if p.is_file())
    assert total < 20 * 2**20
    for name in CASE_NAMES:
        size = sum(p.stat().st_size for p in (SAMPLE_DATA / name).iterdir())
        assert size < 3 * 2**20, name


def test_dose_files_carry_the_closed_form_dose():
    from rtqa.synthetic.cases import spine_3fx

    ds = pydicom.dcmread(SAMPLE_DATA / "spine_3fx" / "RD.SPINE3FX.dcm")
    dose = ds.pixel_array * float(ds.DoseGridScaling)
    case = spine_3fx().current
    # the maximum of the closed-form dose sits at the centre of the vertebral body (plateau)
    assert dose.max() == pytest.approx(case.dose.max_gy, rel=1e-4)
    assert str(ds.DoseUnits) == "GY" and str(ds.DoseSummationType) == "PLAN"


def test_every_body_outline_covers_its_dose_grid_along_z():
    """As a planning system's would, each course's body outline (its first and last contour
    plane, half a plane spacing beyond) spans its dose grid's voxels along z, in its own frame;
    the prior courses' too (their body was once cut at z 231.25 mm of frame B, the field reaching
    247.5 mm)."""
    from rtqa.synthetic.cases import PLANE_STEP_MM, sample_cases

    for case in sample_cases():
        for course in case.courses:
            (body,) = [r.solid for r in course.rois if r.interpreted_type == "EXTERNAL"]
            contoured = [z for z in course.planes_mm if body.sections(z)]
            z = course.grid[2]
            assert min(contoured) - PLANE_STEP_MM / 2 <= z.values[0] - z.step / 2
            assert z.values[-1] + z.step / 2 <= max(contoured) + PLANE_STEP_MM / 2, (
                case.name,
                course.label,
            )


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_batch_cases_with_corrupt_share(tmp_path):
    n = 10
    assert main([str(tmp_path), "--cases", str(n), "--seed", "7"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    cases = manifest["cases"]
    assert len(cases) == n
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [c["name"] for c in cases]
    bad = [c for c in cases if c["corruption"]]
    assert len(bad) == corrupt_count(n) == 1
    assert bad[0]["corruption"] == "truncated_dose"
    with pytest.raises(Exception):  # noqa: B017 - any read failure will do
        pydicom.dcmread(next((tmp_path / bad[0]["name"]).glob("RD.*.dcm"))).pixel_array  # noqa: B018
    for c in (c for c in cases if not c["corruption"]):
        folder = tmp_path / c["name"]
        assert {p.name.split(".")[0] for p in folder.glob("*.dcm")} == {"RP", "RS", "RD", "RT"}
        assert len(list(folder.glob("RT.*.dcm"))) == c["fractions"]
        plan = pydicom.dcmread(next(folder.glob("RP.*.dcm")))
        assert plan.FractionGroupSequence[0].NumberOfFractionsPlanned == c["fractions"]
        assert float(plan.DoseReferenceSequence[0].TargetPrescriptionDose) == c["rx_gy"]
    # same seed, same plan of cases; another seed, another one
    assert [e.__dict__ for e in plan_batch(n, 7)] == cases
    assert [e.__dict__ for e in plan_batch(n, 8)] != cases


def test_plan_batch_share_and_kinds():
    entries = plan_batch(40, 3)
    kinds = [e.corruption for e in entries if e.corruption]
    assert len(kinds) == 4
    assert set(kinds) == {"truncated_dose", "garbage_file", "truncated_plan"}
    assert {e.site for e in entries} == {"spine", "lung", "bone"}
    assert {e.fractions for e in entries} == {1, 3, 5}


@pytest.mark.filterwarnings("ignore:End of file reached")
@pytest.mark.parametrize(
    ("kind", "prefix"), [("truncated_dose", "RD"), ("garbage_file", "RS"), ("truncated_plan", "RP")]
)
def test_corruptions(tmp_path, kind, prefix):
    folder = tmp_path / "case"
    shutil.copytree(SAMPLE_DATA / "spine_3fx_nocord", folder)
    corrupt(folder, kind, np.random.default_rng(0))
    # every corruption makes the case unreadable for rtqa check: exit 3, naming the file
    result = CliRunner().invoke(cli, ["check", str(folder), "--format", "json"])
    assert result.exit_code == 3, result.output
    assert f"{prefix}." in result.stderr + result.stdout
    if kind == "truncated_plan":
        path = next(folder.glob("RP.*.dcm"))
        assert (
            path.stat().st_size * 2 <= (SAMPLE_DATA / "spine_3fx_nocord" / path.name).stat().st_size
        )
    elif kind == "truncated_dose":
        path = next(folder.glob("RD.*.dcm"))
        assert (
            path.stat().st_size * 2 <= (SAMPLE_DATA / "spine_3fx_nocord" / path.name).stat().st_size
        )
        with pytest.raises(Exception):  # noqa: B017 - any read failure will do
            pydicom.dcmread(path).pixel_array  # noqa: B018
    else:
        with pytest.raises(pydicom.errors.InvalidDicomError):
            pydicom.dcmread(next(folder.glob("RS.*.dcm")))


@pytest.mark.parametrize("n, expected", [(1, 0), (5, 1), (10, 1), (20, 2), (100, 10)])
def test_corrupt_share(n, expected):
    assert corrupt_count(n) == expected
