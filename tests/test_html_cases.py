"""Check results of sample cases from the real pipeline, for the HTML and browser tests."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pydicom

from rtqa.check import CheckOptions, run_check
from rtqa.model import CheckResult, Status

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
#: A structure name that sets window.__xss if it ever reaches the page as markup (fits VR LO).
XSS_NAME = "<script>window.__xss=1</script><img src=x onerror=__xss=2>"


@cache
def checked(case: str, protocol: str | None = None) -> CheckResult:
    """``rtqa check sample_data/<case> [--protocol P]`` with the context kept (cached)."""
    options = CheckOptions(protocol=protocol, keep_context=True)
    results = run_check([str(SAMPLE / case)], options)
    assert len(results) == 1
    return results[0]


def xss_case(tmp_path: Path) -> CheckResult:
    """spine_3fx with its oesophagus renamed to :data:`XSS_NAME` (mapped onto Esophagus)."""
    folder = tmp_path / "spine_xss"
    shutil.copytree(SAMPLE / "spine_3fx", folder)
    rs = folder / "RS.SPINE3FX.dcm"
    ds = pydicom.dcmread(rs)
    renamed = 0
    for item in ds.StructureSetROISequence:
        if item.ROIName == "Esophagus":
            item.ROIName = XSS_NAME
            renamed += 1
    assert renamed == 1
    ds.save_as(rs)
    options = CheckOptions(keep_context=True, mapping={"Esophagus": (XSS_NAME,)})
    (result,) = run_check([str(folder)], options)
    return result


def test_lung_5fx_deviates_on_the_oesophagus():
    result = checked("lung_5fx")
    assert result.verdict is Status.MAJOR
    worst = [f for f in result.findings if f.status is Status.MAJOR]
    assert [f.roi for f in worst] == ["Esophagus"]
    assert result.context is not None


def test_renamed_structure_is_judged_under_its_mapping(tmp_path):
    result = xss_case(tmp_path)
    assert XSS_NAME in result.context.rois
    assert any(f.roi == XSS_NAME for f in result.findings)
