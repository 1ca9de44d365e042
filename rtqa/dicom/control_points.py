"""Integrity of a beam's control points (catalogue row P9): notes, never numbers, never errors.

A control point states only what is set or changes there: control point 0 defines every
applicable parameter, later ones carry only what changes (a RayStation VMAT arc: jaws, angles,
isocentre and energy in control point 0, then only MLC positions and the cumulative meterset
weight). Values left out are carried forward from the last control point that gives them, so an
omission after control point 0 is never a note. What is noted (one WARNING per beam and kind):

* no control points, or NumberOfControlPoints other than the number of items;
* CumulativeMetersetWeight missing or empty at a control point, decreasing from one control point
  to the next, not 0 at control point 0, or at the last control point not equal to the beam's
  FinalCumulativeMetersetWeight; weights are compared with an absolute tolerance of
  :data:`WEIGHT_RTOL` times the largest weight of the beam (FinalCumulativeMetersetWeight
  included; 1 when all are 0);
* control point 0 not defining GantryAngle, BeamLimitingDeviceAngle, IsocenterPosition, the beam
  limiting device positions (BeamLimitingDevicePositionSequence with an item: always in an RT
  Plan; in an RT Ion Plan when the beam has an IonBeamLimitingDeviceSequence item) or
  NominalBeamEnergy (for ion beams, where the standard makes it Type 1C, required in control
  point 0; for PHOTON and ELECTRON beams of an RT Plan, where its table makes it Type 3 but
  PS3.3 C.8.8.14.5 asks for every applicable parameter in control point 0). An empty
  IsocenterPosition (Type 2C, legal) counts as not defined: the isocentre is then unknown.
  Other attributes of control point 0 (PatientSupportAngle; for ions snout position, range
  shifter and scan spot settings) are not checked;
* an IsocenterPosition more than :data:`ISOCENTER_TOLERANCE_MM` (Euclidean distance) from the
  first one given: the isocentre of a beam does not move;
* a value that is not a number (text, NaN, infinity, several values where one belongs; an
  IsocenterPosition not of three numbers): it is then treated as absent.

Control points are named by their 0-based position in the sequence, which is their
ControlPointIndex in a conformant plan. Units: meterset weights are dimensionless (relative to
FinalCumulativeMetersetWeight), positions in mm (patient coordinates), angles in degrees, energies
in MV or MeV (MeV/u for ions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from rtqa.dicom.common import lenient_value, optional_float, optional_str, tag_name, whole_number
from rtqa.model import Level, Note

#: Relative tolerance for comparing cumulative meterset weights (of the beam's largest weight).
WEIGHT_RTOL = 1e-6
#: How far (mm) a later control point's IsocenterPosition may lie from the first one given.
ISOCENTER_TOLERANCE_MM = 0.01
#: Control points named in one note before "and N more".
_LISTED = 5

_ENERGY_RADIATION_TYPES = ("PHOTON", "ELECTRON")
_POSITIONS = "BeamLimitingDevicePositionSequence"

Warn = Callable[[str, str], None]
#: Malformed values by keyword: (control point index, or None for the beam item; the text).
Malformed = dict[str, list[tuple[int | None, str]]]


def control_point_notes(beam_item: Dataset, ion: bool, path: str) -> list[Note]:
    """WARNING notes about the control points of one beam item of a BeamSequence (of an
    IonBeamSequence when ``ion``) of the plan at ``path``; see the module's docstring. Never
    raises on malformed input; the caller chooses the beams (rtqa checks TREATMENT beams)."""
    where = _beam_label(beam_item)
    seq_keyword = "IonControlPointSequence" if ion else "ControlPointSequence"
    notes: list[Note] = []

    def warn(message: str, keyword: str) -> None:
        notes.append(Note(Level.WARNING, f"{where}: {message}", path, tag_name(keyword)))

    raw = beam_item.get(seq_keyword)
    points = [p for p in raw if isinstance(p, Dataset)] if isinstance(raw, Sequence) else []
    if not points:
        warn(
            f"no {seq_keyword}: the beam's delivery (angles, collimation, meterset weights) "
            "is not described",
            seq_keyword,
        )
        return notes
    _check_count(beam_item, len(points), seq_keyword, warn)
    bad: Malformed = {}
    weights = [_number(p, "CumulativeMetersetWeight", i, bad) for i, p in enumerate(points)]
    _check_weights(beam_item, points, weights, bad, warn)
    _check_first(beam_item, points[0], ion, seq_keyword, bad, warn)
    _check_isocenter(points, bad, warn)
    for keyword, found in bad.items():
        for _, text in (f for f in found if f[0] is None):  # a beam attribute
            warn(f"{keyword} {text!r} is not a number: treated as absent", keyword)
        at = [f"control point {i} ({text!r})" for i, text in found if i is not None]
        if at:
            warn(f"{keyword} is not a number at {_listed(at)}: treated as absent", keyword)
    return notes


def _beam_label(beam_item: Dataset) -> str:
    number = whole_number(lenient_value(beam_item, "BeamNumber"))
    name = optional_str(beam_item, "BeamName")
    label = f"beam {number if number is not None else '?'}"
    return f"{label} '{name}'" if name else label


def _check_count(beam_item: Dataset, items: int, seq_keyword: str, warn: Warn) -> None:
    keyword = "NumberOfControlPoints"
    if _absent(beam_item, keyword):
        warn(f"{keyword} missing ({seq_keyword} holds {_points(items)})", keyword)
        return
    stated = beam_item.get(keyword)
    number = whole_number(stated)
    if number is None:
        warn(
            f"{keyword} {_text(stated)!r} is not an integer ({seq_keyword} holds {_points(items)})",
            keyword,
        )
    elif number != items:
        warn(f"{keyword} {number} but {seq_keyword} holds {_points(items)}", keyword)


def _check_weights(
    beam_item: Dataset,
    points: list[Dataset],
    weights: list[float | None],
    bad: Malformed,
    warn: Warn,
) -> None:
    keyword = "CumulativeMetersetWeight"
    final_keyword = "FinalCumulativeMetersetWeight"
    final = _number(beam_item, final_keyword, None, bad)
    known = [w for w in weights if w is not None]
    scale = max((abs(w) for w in [*known, final or 0.0]), default=0.0) or 1.0
    tol = WEIGHT_RTOL * scale
    missing = [i for i, p in enumerate(points) if _absent(p, keyword)]
    if missing:
        warn(f"{keyword} missing at {_listed(f'control point {i}' for i in missing)}", keyword)
    first = weights[0]
    if first is not None and abs(first) > tol:
        warn(f"{keyword} of control point 0 is {first:g}, not 0", keyword)
    falls = []
    previous: tuple[int, float] | None = None
    for index, weight in enumerate(weights):
        if weight is None:
            continue
        if previous is not None and weight < previous[1] - tol:
            falls.append(
                f"control point {index} ({weight:g} after {previous[1]:g} at control point "
                f"{previous[0]})"
            )
        previous = (index, weight)
    if falls:
        warn(f"{keyword} decreases at {_listed(falls)}", keyword)
    last = weights[-1]
    if final is None:
        if known and _absent(beam_item, final_keyword):
            warn(
                f"{final_keyword} missing (the control points give meterset weights)", final_keyword
            )
    elif last is not None and abs(last - final) > tol:
        warn(
            f"{keyword} of the last control point ({len(points) - 1}) is {last:g}, not the "
            f"beam's {final_keyword} {final:g} (relative tolerance {WEIGHT_RTOL:g})",
            keyword,
        )


def _check_first(
    beam_item: Dataset,
    first: Dataset,
    ion: bool,
    seq_keyword: str,
    bad: Malformed,
    warn: Warn,
) -> None:
    """Control point 0 must define what later control points carry forward."""
    wanted = ["GantryAngle", "BeamLimitingDeviceAngle", "IsocenterPosition"]
    if ion:
        wanted.append("NominalBeamEnergy")
        if _items(beam_item, "IonBeamLimitingDeviceSequence"):
            wanted.append(_POSITIONS)
    else:
        wanted.append(_POSITIONS)
        if optional_str(beam_item, "RadiationType").upper() in _ENERGY_RADIATION_TYPES:
            wanted.append("NominalBeamEnergy")
    missing = []
    for keyword in wanted:
        if keyword == _POSITIONS:
            if not _items(first, keyword):
                missing.append(keyword)
        elif _absent(first, keyword):
            missing.append(keyword)
        elif keyword != "IsocenterPosition":  # parsed with the later ones
            _number(first, keyword, 0, bad)  # a malformed value is named as such
    if missing:
        warn(
            f"control point 0 does not define {', '.join(missing)} (later control points "
            "take their values from it)",
            seq_keyword,
        )


def _check_isocenter(points: list[Dataset], bad: Malformed, warn: Warn) -> None:
    reference: tuple[int, tuple[float, ...]] | None = None
    moved: list[str] = []
    farthest = 0.0
    for index, point in enumerate(points):
        position = _point(point, index, bad)
        if position is None:
            continue
        if reference is None:
            reference = (index, position)
            continue
        distance = math.dist(position, reference[1])
        if distance > ISOCENTER_TOLERANCE_MM:
            moved.append(f"control point {index}")
            farthest = max(farthest, distance)
    if reference is not None and moved:
        warn(
            f"IsocenterPosition at {_listed(moved)} differs from control point "
            f"{reference[0]}'s by up to {farthest:.2f} mm (tolerance "
            f"{ISOCENTER_TOLERANCE_MM:g} mm): the isocentre cannot move within a beam",
            "IsocenterPosition",
        )


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _absent(item: Dataset, keyword: str) -> bool:
    """Not there, or there and empty (Type 2)."""
    value = item.get(keyword)
    if value is None:
        return True
    if isinstance(value, MultiValue | Sequence):
        return len(value) == 0
    return _text(value) == ""


def _items(item: Dataset, keyword: str) -> bool:
    """``keyword`` is a sequence with at least one item."""
    value = item.get(keyword)
    return isinstance(value, Sequence) and len(value) > 0


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip()
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _number(item: Dataset, keyword: str, index: int | None, bad: Malformed) -> float | None:
    """A one-valued DS as a finite float; None when absent or malformed (then recorded in
    ``bad`` under ``keyword`` with ``index``: a control point, or None for the beam item)."""
    if _absent(item, keyword):
        return None
    number = optional_float(item, keyword)  # None for several values, text, NaN or infinity
    if number is None:
        bad.setdefault(keyword, []).append((index, _text(item.get(keyword))))
    return number


def _point(item: Dataset, index: int, bad: Malformed) -> tuple[float, ...] | None:
    """IsocenterPosition as three finite numbers (mm); None when absent or malformed."""
    keyword = "IsocenterPosition"
    if _absent(item, keyword):
        return None
    value = item.get(keyword)
    numbers = [_finite(v) for v in (value if isinstance(value, MultiValue) else [value])]
    position = tuple(n for n in numbers if n is not None)
    if len(position) == len(numbers) == 3:
        return position
    bad.setdefault(keyword, []).append((index, _text(value)))
    return None


def _finite(value: object) -> float | None:
    try:
        number = float(_text(value))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _points(count: int) -> str:
    return f"{count} control point{'' if count == 1 else 's'}"


def _listed(found: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c'; at most :data:`_LISTED` named, then 'and N more'."""
    items = list(found)
    if len(items) > _LISTED:
        return f"{', '.join(items[:_LISTED])} and {len(items) - _LISTED} more"
    if len(items) > 1:
        return f"{', '.join(items[:-1])} and {items[-1]}"
    return items[0] if items else ""
