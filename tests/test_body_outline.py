"""The one body-outline rule every check uses (:func:`rtqa.model.body_outline`)."""

from __future__ import annotations

import pytest

from rtqa.model import ContourPlane, Roi, body_outline

PLANE = ContourPlane(0.0, (), 1)


def roi(number: int, name: str, kind: str, contoured: bool = True) -> Roi:
    return Roi(number, name, kind, planes=(PLANE,) if contoured else ())


@pytest.mark.parametrize(
    ("rois", "expected"),
    [
        # the one contoured EXTERNAL, whatever its name
        ([roi(1, "Skin", "EXTERNAL"), roi(2, "Body", "ORGAN")], 1),
        # an empty EXTERNAL does not count: the ROI named Outline does
        ([roi(1, "Patient", "EXTERNAL", contoured=False), roi(2, "OUTLINE ", "ORGAN")], 2),
        # two EXTERNALs: the one named Body
        ([roi(1, "Couch", "EXTERNAL"), roi(2, "body", "EXTERNAL")], 2),
        # two EXTERNALs, neither named: no guess
        ([roi(1, "Skin", "EXTERNAL"), roi(2, "Mask", "EXTERNAL")], None),
        # two ROIs named as a body outline and no EXTERNAL: no guess
        ([roi(1, "Body", "ORGAN"), roi(2, "External", "ORGAN")], None),
        ([roi(1, "PTV", "PTV")], None),
    ],
)
def test_body_outline(rois, expected):
    found = body_outline(rois)
    assert (found.number if found is not None else None) == expected
