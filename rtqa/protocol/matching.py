"""Match a protocol's structures to the ROIs of a structure set, and say how each was matched.

Names are compared after normalising case, spaces and punctuation (``Spinal Cord``,
``spinal_cord`` and ``SPINALCORD`` are one name) and laterality (``L``/``R``/``Lt``/``Rt``/
``Left``/``Right`` as a first or last word: ``Left Lung`` is ``Lung_L``). Order of precedence:
an explicit mapping (``--map SpinalCord=cord_PRV``, ``--map SpinalCord=#7`` for ROI number 7, or
a mapping file), the exact TG-263 name, an alias, a regular-expression pattern. When several
ROIs tie at the best level the match is ambiguous and nothing is judged (also a name and its
re-import copy ``SpinalCord (1)``, which compare as one name: which holds the organ is not for
rtqa to guess), unless they hold the same contours, when the one without a copy number is
judged; when none matches the result lists what was looked for and the near misses. A name the
TG-263 grammar marks as derived (a PRV ``SpinalCord_PRV05``, a partial structure
``SpinalCord~``, a planning aid ``zPTV_opt`` or ``_Cord``, a margin or crop
``cord+3mm``/``PTV-03``, a qualifier ``Lungs^Ex``, an ``!`` evaluation copy) matches at no tier,
even when its normalised name is the organ's: only an explicit mapping, or an alias in the
constraint file spelling that exact name (compared ignoring case only: alias ``PTV!`` takes
``PTV!`` and not ``PTV``), takes it. A hyphen between two words (``Spinal-Cord``) is spelling,
not a crop. Targets gathered by type leave out planning aids, and an evaluation or cropped copy
of another target (``PTV_Eval``, ``PTV!``, ``PTV-3mm``, ``PTV_7000-05`` beside ``PTV_7000``) is
named on that target's match instead of counting as a target of its own, and so is a re-import
copy with the same contours (``PTV (1)`` beside ``PTV``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rtqa.errors import UsageError
from rtqa.model import ALSO_MATCHED, Roi
from rtqa.protocol.model import TARGET_TYPES, Protocol, RoiSpec

_SIDES = {"l": "L", "lt": "L", "left": "L", "r": "R", "rt": "R", "right": "R"}
_DERIVED_TOKENS = {
    "prv": "a PRV",
    "ring": "a ring (planning-aid) structure",
    "opt": "an optimisation structure",
    "avoid": "an avoidance structure",
    "avd": "an avoidance structure",
    "minus": "a derived (Boolean) structure",
    "crop": "a cropped structure",
    "exp": "an expanded structure",
    "expand": "an expanded structure",
    "mm": "a margin (expanded or cropped) structure",
    "plus": "a derived (Boolean) structure",
}
#: An ROI named by number in a mapping: ``#12``.
_ROI_NUMBER = re.compile(r"#(\d+)")
#: An ROI shown with its number (it shares its name with another): ``name #12``.
_NUMBERED = re.compile(r"(.*) #(\d+)")
#: An ROI name with the tags rtqa adds to keep ROIs sharing a name apart (``#12``, ``[plan]``).
_SHARED = re.compile(r"(.*?)(?: #\d+)?(?: \[[^\]]*\])?", re.DOTALL)
#: A copy number a planning system appends to a name it already holds: ``SpinalCord (1)``.
_COPY_SUFFIX = re.compile(r"\s*\(\d+\)\s*$")
_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+(?:\.\d+)?")


class MappingError(UsageError):
    """An explicit mapping that names an unknown protocol structure or a missing ROI."""


def tokens(name: str) -> list[str]:
    """Words of a structure name: split on punctuation, spaces, camelCase and digits."""
    return _TOKEN.findall(name)


@dataclass(frozen=True)
class NameKey:
    """A normalised name: ``base`` (lower-case words joined) and ``side`` (``L``, ``R`` or
    ``None``)."""

    base: str
    side: str | None


def name_key(name: str) -> NameKey:
    """Normalise case, spaces, punctuation, laterality (first or last word) and a copy number
    ``Name (1)`` (a planning system's re-import copy: the same name)."""
    words = [w.lower() for w in tokens(_COPY_SUFFIX.sub("", name))]
    side = None
    if len(words) > 1 and words[-1] in _SIDES and words[0] not in _SIDES:
        side = _SIDES[words.pop()]
    elif len(words) > 1 and words[0] in _SIDES and words[-1] not in _SIDES:
        side = _SIDES[words.pop(0)]
    return NameKey("".join(words), side)


def derived_reason(name: str) -> str | None:
    """Why ``name`` looks like a PRV, derived or planning-aid structure (else ``None``)."""
    stripped = name.strip()
    if re.match(r"^(z|_)", stripped) and not re.match(r"^z[a-z]", stripped):
        return "a planning-aid structure (z or _ prefix)"
    for ch, what in (
        ("~", "a partial structure (~)"),
        ("^", "a qualified structure (^)"),
        ("+", "a derived structure (+)"),
    ):
        if ch in stripped:
            return what
    if "!" in stripped:
        words = tokens(stripped)
        if words and words[0].upper() in TARGET_TYPES:
            return "an evaluation (segmented) target (TG-263 PTV!)"
        return "marked '!' (TG-263 uses '!' only for an evaluation PTV, PTV!)"
    if re.search(r"\S-\s*\S", stripped):
        return "a derived or cropped structure (-)"
    for w in tokens(stripped):
        lw = w.lower()
        if lw in _DERIVED_TOKENS:
            return _DERIVED_TOKENS[lw]
    return None


def _name_derived(name: str) -> str | None:
    """:func:`derived_reason` for the exact and alias tiers, where a hyphen or plus between two
    words (``Spinal-Cord``, ``Lung-L``) is only a separator: TG-263 crops are ``-`` and a number
    (``PTV-03``), and a Boolean with another structure (``Lungs-GTV``) never has the organ's
    normalised name."""
    return derived_reason(re.sub(r"(?<=[A-Za-z])\s*[-+]\s*(?=[A-Za-z])", "_", name))


def _raw(name: str) -> str:
    """A name as written, compared ignoring case and surrounding spaces only."""
    return name.strip().casefold()


def _base_without_derived(name: str) -> NameKey:
    kept = [w for w in tokens(re.sub(r"[-+~^!].*$", "", name)) if w.lower() not in _DERIVED_TOKENS]
    kept = [w for w in kept if not w.isdigit()]
    return name_key("_".join(kept)) if kept else NameKey("", None)


class MatchKind(enum.StrEnum):
    MAPPING = "mapping"
    EXACT = "exact TG-263 name"
    ALIAS = "alias"
    PATTERN = "pattern"
    TYPE = "interpreted type"
    NONE = "no match"
    AMBIGUOUS = "ambiguous"


_TIER = {MatchKind.EXACT: 0, MatchKind.ALIAS: 1, MatchKind.PATTERN: 2, MatchKind.TYPE: 3}


@dataclass(frozen=True)
class Rejected:
    """An ROI that came close but was not taken, and why."""

    roi_name: str
    reason: str


@dataclass(frozen=True)
class RoiMatch:
    """The result for one protocol structure (``spec_name``: organ name or target rule id).

    ``roi`` is the matched ROI (``None`` when nothing or more than one matched); ``how`` says
    how (``exact TG-263 name``, ``alias 'cord'``, ``pattern '^cord'``, ``mapping``...);
    ``competitors``: other ROIs that matched (at the same level when ambiguous, at a lower
    level otherwise); ``considered``: the names and patterns looked for; ``rejected``: near
    misses with the reason; ``minus``: for a derived structure, the matches of the structures
    to subtract; ``copies``: see the attribute.
    """

    spec_name: str
    roi: Roi | None
    kind: MatchKind
    how: str
    competitors: tuple[str, ...] = ()
    considered: tuple[str, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    minus: tuple[RoiMatch, ...] = ()
    #: Numbers of the target's re-import copies with identical contours (``PTV (1)``), judged
    #: through it: a dose reference pointing to one of them prescribes to this target.
    copies: tuple[int, ...] = ()
    #: For a union (``plus`` in the constraint file): the matches of the other structures.
    plus: tuple[RoiMatch, ...] = ()

    @property
    def matched(self) -> bool:
        return self.roi is not None

    @property
    def roi_name(self) -> str | None:
        return self.roi.name if self.roi is not None else None

    @property
    def convention(self) -> str:
        """``'; contoured on one plane (z 0 mm): 2.5 mm thick by convention (...)'`` for a
        matched ROI contoured on a single plane, and likewise (named) for each such ROI added
        or subtracted; ``''`` when none is."""
        parts = [single_plane_text(self.roi)] if self.roi is not None else []
        parts += single_plane_notes(m.roi for m in (*self.plus, *self.minus) if m.roi is not None)
        return "".join(f"; {p}" for p in parts if p)

    def describe(self) -> str:
        """One line for reports."""
        if self.roi is not None:
            text = f"{self.spec_name} -> '{self.roi.name}' ({self.how})"
            if self.plus:
                text += " plus " + ", ".join(
                    f"'{m.roi_name}'" for m in self.plus if m.roi is not None
                )
            if self.minus:
                text += " minus " + ", ".join(
                    f"'{m.roi_name}'" for m in self.minus if m.roi is not None
                )
            text += self.convention
            if self.competitors:
                text += f"; {ALSO_MATCHED}: " + ", ".join(f"'{c}'" for c in self.competitors)
            return text
        if self.kind is MatchKind.AMBIGUOUS:
            names = ", ".join(f"'{c}'" for c in self.competitors)
            text = (
                f"{self.spec_name}: ambiguous, several ROIs match ({names}); choose one with "
                f"--map {self.spec_name}=NAME"
            )
            numbered = [c for c in self.competitors if _NUMBERED.fullmatch(c)]
            if numbered:
                number = _NUMBERED.fullmatch(numbered[0]).group(2)  # type: ignore[union-attr]
                text += f" (ROIs sharing a name by number: --map {self.spec_name}=#{number})"
            return text
        text = f"{self.spec_name}: no ROI matched (looked for {', '.join(self.considered)})"
        if self.rejected:
            text += "; not taken: " + "; ".join(
                f"'{r.roi_name}' ({r.reason})" for r in self.rejected
            )
        return text


def single_plane_text(roi: Roi) -> str:
    """``'contoured on one plane (z 0 mm): 2.5 mm thick by convention (the structure set's
    plane spacing)'`` for an ROI given a thickness by convention
    (``Roi.single_plane_thickness_mm``); ``''`` otherwise."""
    thickness = roi.single_plane_thickness_mm
    if thickness is None or len(roi.planes) != 1:
        return ""
    return (
        f"contoured on one plane (z {roi.planes[0].z_mm:g} mm): {thickness:g} mm thick by "
        "convention (the structure set's plane spacing)"
    )


def single_plane_notes(rois: Iterable[Roi]) -> list[str]:
    """``"'GTV' contoured on one plane ..."`` (:func:`single_plane_text`, named) for each of
    ``rois`` given a thickness by convention."""
    return [f"'{roi.name}' {text}" for roi in rois if (text := single_plane_text(roi))]


def _is_target(roi: Roi) -> bool:
    return roi.interpreted_type.upper() in TARGET_TYPES


def match_structure(
    spec_name: str, spec: RoiSpec, rois: Sequence[Roi], *, allow_targets: bool = False
) -> RoiMatch:
    """Match one named structure (an organ, or a target selected by name)."""
    wanted: list[tuple[MatchKind, str, NameKey]] = []
    if spec.name:
        wanted.append((MatchKind.EXACT, spec.name, name_key(spec.name)))
    wanted += [(MatchKind.ALIAS, a, name_key(a)) for a in spec.aliases]
    considered = tuple([f"'{n}'" for _, n, _ in wanted] + [f"pattern '{p}'" for p in spec.patterns])
    if spec.type == "EXTERNAL":
        considered += ("interpreted type EXTERNAL",)
    hits: list[tuple[int, Roi, str]] = []
    rejected: list[Rejected] = []
    # a derived name (in the file or in the structure set) is compared as written, never
    # normalised: alias 'PTV!' takes 'PTV!' only, and 'SpinalCord~' is not 'SpinalCord'
    wanted_derived = [_name_derived(text) is not None for _, text, _ in wanted]
    wanted_keys = {k for (_, _, k), d in zip(wanted, wanted_derived, strict=True) if not d}
    wanted_bases = {k.base for k in wanted_keys}
    for roi in rois:
        rtype = roi.interpreted_type.upper()
        key = name_key(roi.name)
        derived = _name_derived(roi.name)
        found = None
        for (kind, text, wkey), wderived in zip(wanted, wanted_derived, strict=True):
            same = _raw(roi.name) == _raw(text) if derived or wderived else key == wkey
            if same:
                how = kind.value if kind is MatchKind.EXACT else f"alias '{text}'"
                found = (_TIER[kind], how)
                break
        if found is None and spec.patterns:
            for p in spec.patterns:
                if re.search(p, roi.name, re.IGNORECASE):
                    why = derived_reason(roi.name)
                    if why:
                        rejected.append(Rejected(roi.name, f"matches pattern '{p}' but is {why}"))
                        found = ("rejected", "")
                        break
                    sides = {k.side for k in wanted_keys} or {None}
                    if key.side not in sides:
                        rejected.append(
                            Rejected(roi.name, f"matches pattern '{p}' but laterality differs")
                        )
                        found = ("rejected", "")
                        break
                    found = (_TIER[MatchKind.PATTERN], f"pattern '{p}'")
                    break
        if found is None and spec.type == "EXTERNAL" and rtype == "EXTERNAL":
            found = (_TIER[MatchKind.TYPE], "interpreted type EXTERNAL")
        if found is None:
            if derived and (
                key.base in wanted_bases or _base_without_derived(roi.name).base in wanted_bases
            ):
                rejected.append(Rejected(roi.name, f"is {derived}; map it explicitly to use it"))
            elif key.base in wanted_bases:
                rejected.append(Rejected(roi.name, "laterality differs"))
            else:
                why = derived_reason(roi.name)
                if why and _base_without_derived(roi.name).base in wanted_bases:
                    rejected.append(Rejected(roi.name, f"is {why}; map it explicitly to use it"))
            continue
        if found[0] == "rejected":
            continue
        tier, how = found
        if not allow_targets and _is_target(roi) and spec.type not in TARGET_TYPES:
            rejected.append(Rejected(roi.name, f"interpreted type {rtype} is a target"))
            continue
        if spec.type and rtype and spec.type != rtype and spec.type in TARGET_TYPES:
            rejected.append(Rejected(roi.name, f"interpreted type {rtype}, not {spec.type}"))
            continue
        hits.append((int(tier), roi, how))
    if not hits:
        return RoiMatch(
            spec_name, None, MatchKind.NONE, "no match", (), considered, tuple(rejected)
        )
    best = min(t for t, _, _ in hits)
    top = [(r, h) for t, r, h in hits if t == best]
    others = tuple(r.name for t, r, _ in sorted(hits, key=lambda x: x[0]) if t != best)
    if len(top) > 1 and _identical([r for r, _ in top]):
        # a name and its re-import copy ('SpinalCord (1)') holding the same contours: either
        # gives the same numbers, so nothing is left to guess
        first = min(range(len(top)), key=lambda i: copy_base(top[i][0].name) is not None)
        kept = top[first][0]
        rejected += [
            Rejected(
                _numbered(r) if r.name == kept.name else r.name,
                f"holds the same contours as '{kept.name}', judged in its place",
            )
            for i, (r, _) in enumerate(top)
            if i != first
        ]
        top = [top[first]]
    if len(top) > 1:
        names = [r.name for r, _ in top]
        return RoiMatch(
            spec_name,
            None,
            MatchKind.AMBIGUOUS,
            "ambiguous",
            tuple(_numbered(r) if names.count(r.name) > 1 else r.name for r, _ in top),
            considered,
            tuple(rejected),
        )
    roi, how = top[0]
    kind = next(k for k, t in _TIER.items() if t == best)
    return RoiMatch(spec_name, roi, kind, how, others, considered, tuple(rejected))


#: TG-263 evaluation or cropped copies of a target: ``PTV!``, ``PTV_7000-05``, ``PTV-3mm``, and
#: the common ``PTV_Eval`` / ``PTV_DVH``.
_VARIANT_SUFFIX = re.compile(
    r"(?:[\s_]*(?:eval(?:uation)?|dvh)|\s*!|\s*-\s*\d+(?:\.\d+)?\s*(?:mm)?)\s*$", re.IGNORECASE
)


def variant_base(name: str) -> str | None:
    """The name of the target an evaluation or cropped copy is made from (``PTV_7000-05`` ->
    ``PTV_7000``, ``PTV!`` and ``PTV_Eval`` -> ``PTV``); ``None`` for other names."""
    base = name.strip()
    for _ in range(3):
        m = _VARIANT_SUFFIX.search(base)
        if m is None or m.start() == 0:
            break
        base = base[: m.start()].rstrip(" _-")
    return base if base and base != name.strip() else None


def _variant_parent(roi: Roi, found: Sequence[Roi], target_type: str) -> Roi | None:
    """The target among ``found`` that ``roi`` is an evaluation or cropped copy of: the one its
    base name names (``PTV_7000`` for ``PTV_7000-05``), or, for a bare ``PTV-3mm`` / ``PTV_Eval``,
    the only other target. ``None`` when there is no such target or more than one could be."""
    base = variant_base(roi.name)
    if base is None:
        return None
    plain = [r for r in found if r.number != roi.number and variant_base(r.name) is None]
    named = [r for r in plain if name_key(r.name) == name_key(base)]
    if len(named) == 1:
        return named[0]
    if not named and name_key(base) == NameKey(target_type.lower(), None) and len(plain) == 1:
        return plain[0]
    return None


def match_type(
    spec_name: str, target_type: str, rois: Sequence[Roi], *, copies: bool = True
) -> tuple[RoiMatch, ...]:
    """Every ROI of a target type: by RTROIInterpretedType, or, for an ROI with no type, by a
    name beginning with the type (``PTV_30Gy``). Helper structures (``zPTV_opt``) are left out.
    A target sharing its name with another ROI is called ``'name #number'`` (each is judged on
    its own, never one in place of the other). Unless ``copies``, an evaluation or cropped copy
    of another target found (``PTV_Eval`` or ``PTV-3mm`` beside the only PTV, ``PTV_7000-05``
    beside ``PTV_7000``) is not a target of its own: it is named in that target's ``how`` and
    ``rejected``; a copy with no identifiable original stays a target. So is a re-import copy
    (``PTV (1)`` beside ``PTV``) whose contours are the original's (:func:`same_contours`; it is
    also in ``copies``); one whose contours differ is a target of its own, and its ``how`` says
    so."""
    found: list[tuple[Roi, str]] = []
    for roi in rois:
        rtype = roi.interpreted_type.upper()
        words = tokens(roi.name)
        named = bool(words) and words[0].upper() == target_type
        if rtype == target_type:
            how = f"interpreted type {target_type}"
        elif not rtype and named:
            how = f"name begins with '{target_type}' (no interpreted type)"
        else:
            continue
        why = derived_reason(roi.name) or ""
        if why.startswith(("a planning-aid", "an optimisation", "a ring", "an avoidance")):
            continue
        found.append((roi, how))
    copies_of: dict[int, list[str]] = {}  # target ROI number -> names of its copies
    reimported: dict[int, list[Roi]] = {}  # target ROI number -> its identical re-import copies
    differing: dict[int, str] = {}  # re-import copy ROI number -> name of its differing original
    if not copies:
        candidates = [r for r, _ in found]
        skipped: set[int] = set()
        for roi in candidates:
            parent = _variant_parent(roi, candidates, target_type)
            if parent is not None:
                copies_of.setdefault(parent.number, []).append(roi.name)
                skipped.add(roi.number)
                continue
            parent = _reimport_parent(roi, candidates)
            if parent is None:
                continue
            if same_contours(roi, parent):
                reimported.setdefault(parent.number, []).append(roi)
                skipped.add(roi.number)
            else:
                differing[roi.number] = parent.name
        found = [(r, h) for r, h in found if r.number not in skipped]
    out = []
    for roi, how in found:
        names = copies_of.get(roi.number, [])
        twins = reimported.get(roi.number, [])
        if names:
            listed = ", ".join(f"'{n}'" for n in names)
            how += f"; its evaluation/cropped copy {listed} is not counted as a separate target"
        if twins:
            listed = ", ".join(f"'{r.name}'" for r in twins)
            how += (
                f"; its re-import copy {listed}, with identical contours, is judged as this "
                "target, not counted as a separate one"
            )
        if roi.number in differing:
            how += (
                f"; its name marks a re-import copy of '{differing[roi.number]}', but the "
                "contours differ: judged as a target of its own"
            )
        rejected = tuple(
            Rejected(
                n,
                f"an evaluation or cropped copy of target '{roi.name}', not a separate "
                f"target; map it (--map {spec_name}=NAME) to judge it instead",
            )
            for n in names
        ) + tuple(
            Rejected(
                r.name,
                f"a re-import copy of target '{roi.name}' with identical contours, judged as "
                "that target",
            )
            for r in twins
        )
        out.append(
            RoiMatch(
                spec_name,
                _numbered_if_shared(roi, rois),
                MatchKind.TYPE,
                how,
                rejected=rejected,
                copies=tuple(r.number for r in twins),
            )
        )
    return tuple(out)


def copy_base(name: str) -> str | None:
    """The name a planning system's re-import copy was made from (``PTV_50Gy (1)`` ->
    ``PTV_50Gy``); ``None`` for a name without a copy number."""
    base = _COPY_SUFFIX.sub("", name)
    return base if base and base != name else None


def _reimport_parent(roi: Roi, found: Sequence[Roi]) -> Roi | None:
    """The one target among ``found`` that ``roi`` (``PTV (1)``) is a re-import copy of: the
    only other target of its name without a copy number; ``None`` otherwise."""
    base = copy_base(roi.name)
    if base is None:
        return None
    key = name_key(base)
    named = [
        r
        for r in found
        if r.number != roi.number and copy_base(r.name) is None and name_key(r.name) == key
    ]
    return named[0] if len(named) == 1 else None


def _identical(rois: Sequence[Roi]) -> bool:
    """Whether every ROI of ``rois`` holds the contours of the first (:func:`same_contours`)."""
    return all(same_contours(rois[0], r) for r in rois[1:])


#: Contour points of two ROIs closer than this (mm) are the same point (a re-export's rounding).
SAME_POINT_MM = 0.01


def same_contours(a: Roi, b: Roi, tol_mm: float = SAME_POINT_MM) -> bool:
    """Whether ``a`` and ``b`` hold the same closed contours (at least one): the same planes
    (z within ``tol_mm``), and on each the same polygons and holes, point by point within
    ``tol_mm``."""
    if not a.planes or len(a.planes) != len(b.planes):
        return False
    for pa, pb in zip(a.planes, b.planes, strict=True):
        if abs(pa.z_mm - pb.z_mm) > tol_mm or len(pa.polygons) != len(pb.polygons):
            return False
        for qa, qb in zip(pa.polygons, pb.polygons, strict=True):
            rings_a, rings_b = (qa.exterior, *qa.holes), (qb.exterior, *qb.holes)
            if len(rings_a) != len(rings_b):
                return False
            for ra, rb in zip(rings_a, rings_b, strict=True):
                if ra.shape != rb.shape or not np.allclose(ra, rb, rtol=0.0, atol=tol_mm):
                    return False
    return True


def _union_match(m: RoiMatch, plus: Sequence[str], organs: Mapping[str, RoiMatch]) -> RoiMatch:
    """The match of a union (``Trachea`` plus ``Bronchus``): ``m`` with the matches of the
    ``plus`` organs found. Where ``m`` itself matched no ROI at all, the first ``plus`` organ
    found stands in for it, so the union is judged on the parts that are contoured. A part whose
    match is ambiguous makes the union's ambiguous (never judged on the other parts alone); an
    ROI of ``m`` without usable contours stays ``m`` (not evaluable, as for any organ)."""
    parts = [organs[t] for t in plus]
    ambiguous = next((p for p in (m, *parts) if p.kind is MatchKind.AMBIGUOUS), None)
    if ambiguous is not None:
        return replace(ambiguous, plus=())  # its own name: the one to --map
    found = [p for p in parts if p.roi is not None and not p.roi.is_empty]
    if m.roi is not None:
        return replace(m, plus=tuple(found))
    if not found:
        return m
    first, rest = found[0], found[1:]
    how = f"{first.how}; no '{m.spec_name}' found: the union is judged on what is contoured"
    return replace(first, spec_name=m.spec_name, how=how, plus=tuple(rest))


def _find_roi(name: str, rois: Sequence[Roi], key: str) -> Roi:
    """The ROI a mapping names: by name, or ``#N`` for ROI number N (the way to choose between
    ROIs sharing a name; the chosen one is then called ``'name #N'`` in the report)."""
    by_number = _ROI_NUMBER.fullmatch(name.strip())
    if by_number:
        return _roi_by_number(int(by_number.group(1)), rois, f"mapping {key}={name}")
    exact = [r for r in rois if r.name == name]
    if len(exact) == 1:
        return exact[0]
    loose = [
        r for r in rois if name_key(r.name) == name_key(name) and r.name.lower() == name.lower()
    ] or [r for r in rois if r.name.strip().lower() == name.strip().lower()]
    if len(loose) == 1:
        return loose[0]
    names = ", ".join(f"'{r.name}'" for r in rois) or "none"
    if len(exact) > 1 or len(loose) > 1:
        numbers = ", ".join(f"#{r.number}" for r in (exact if len(exact) > 1 else loose))
        raise MappingError(
            f"mapping {key}={name}: several ROIs are named '{name}' (ROI numbers {numbers}); "
            f"choose one by number, e.g. {key}=#{(exact or loose)[0].number}"
        )
    raise MappingError(f"mapping {key}={name}: no ROI named '{name}' (ROIs: {names})")


def _roi_by_number(number: int, rois: Sequence[Roi], what: str) -> Roi:
    """ROI ``number``; when another ROI has its name, a copy named ``'name #number'`` so that
    the two stay apart wherever structures are named."""
    found = [r for r in rois if r.number == number]
    if not found:
        listed = ", ".join(f"#{r.number} '{r.name}'" for r in rois) or "none"
        raise MappingError(f"{what}: no ROI number {number} (ROIs: {listed})")
    return _numbered_if_shared(found[0], rois)


def shared_name(name: str) -> str:
    """The ROI's own name behind ``'name #number'`` (an ROI sharing its name in a structure
    set, see :func:`match_type`) and ``'name [plan]'`` (a target name used by several plans of a
    course); other names unchanged."""
    return _SHARED.fullmatch(name).group(1)  # type: ignore[union-attr]


def _numbered_if_shared(roi: Roi, rois: Sequence[Roi]) -> Roi:
    """``roi``, or a copy named ``'name #number'`` when another of ``rois`` has its name."""
    if sum(r.name == roi.name for r in rois) > 1:
        return replace(roi, name=_numbered(roi))
    return roi


def _numbered(roi: Roi) -> str:
    """``'name #number'``: how an ROI sharing its name is shown."""
    return f"{roi.name} #{roi.number}"


@dataclass(frozen=True)
class ProtocolMatch:
    """All matches of one protocol against one structure set.

    ``organs[name]``: the organ's match; ``targets[rule_id]``: one match per target ROI;
    ``unmatched``: ROI names used by no rule.
    """

    organs: dict[str, RoiMatch]
    targets: dict[str, tuple[RoiMatch, ...]]
    unmatched: tuple[str, ...] = ()
    mapping: dict[str, tuple[str, ...]] = field(default_factory=dict)


def match_protocol(
    protocol: Protocol,
    rois: Sequence[Roi],
    mapping: Mapping[str, str | Sequence[str]] | None = None,
) -> ProtocolMatch:
    """Match every organ and target rule of ``protocol`` to ``rois``; ``mapping`` (protocol
    structure name or target rule id -> ROI name(s)) overrides. MappingError for a key the
    protocol does not know or an ROI that does not exist."""
    norm = {k: ((v,) if isinstance(v, str) else tuple(v)) for k, v in (mapping or {}).items()}
    organ_names = {o.name for o in protocol.organs}
    target_ids = {t.id for t in protocol.targets}
    for key, names in norm.items():
        if key not in organ_names and key not in target_ids:
            known = ", ".join(sorted(organ_names | target_ids))
            raise MappingError(
                f"mapping {key}=...: '{key}' is not a structure of protocol "
                f"{protocol.id} (known: {known})"
            )
        if key in organ_names and len(names) != 1:
            raise MappingError(f"mapping {key}: an organ maps to exactly one ROI")

    def organ_match(name: str, spec: RoiSpec) -> RoiMatch:
        if name in norm:
            roi = _find_roi(norm[name][0], rois, name)
            return RoiMatch(name, roi, MatchKind.MAPPING, f"mapping {name}={roi.name}")
        return match_structure(name, spec, rois)

    organs: dict[str, RoiMatch] = {}
    for organ in protocol.organs:
        organs[organ.name] = organ_match(organ.name, organ.roi)
    for organ in protocol.organs:
        if organ.roi.plus:
            organs[organ.name] = _union_match(organs[organ.name], organ.roi.plus, organs)
        if not organ.roi.minus:
            continue
        minus: list[RoiMatch] = []
        for term in organ.roi.minus:
            if term in TARGET_TYPES:
                minus.extend(match_type(term, term, rois))
            else:
                minus.append(organs[term])
        organs[organ.name] = replace(organs[organ.name], minus=tuple(minus))
    targets: dict[str, tuple[RoiMatch, ...]] = {}
    for rule in protocol.targets:
        if rule.id in norm:
            targets[rule.id] = tuple(
                RoiMatch(rule.id, r, MatchKind.MAPPING, f"mapping {rule.id}={r.name}")
                for r in (_find_roi(n, rois, rule.id) for n in norm[rule.id])
            )
        elif rule.roi.name:
            m = match_structure(rule.id, rule.roi, rois, allow_targets=True)
            targets[rule.id] = (m,)
        else:
            targets[rule.id] = match_type(rule.id, rule.roi.type or "PTV", rois, copies=False)
    # by number: an ROI chosen by number may carry its number in its name
    matched = [*organs.values(), *(m for ms in targets.values() for m in ms)]
    matched += [x for m in organs.values() for x in (*m.minus, *m.plus)]
    used = {m.roi.number for m in matched if m.roi is not None}
    unmatched = tuple(r.name for r in rois if r.number not in used)
    return ProtocolMatch(organs, targets, unmatched, norm)


# --------------------------------------------------------------------------------------------
# Mappings from the command line and from files
# --------------------------------------------------------------------------------------------


def parse_mapping_args(items: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``["SpinalCord=cord_PRV", "PTV=PTV_T8,PTV_L1"]`` -> mapping (UsageError if malformed)."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise MappingError(f"--map {item!r}: expected PROTOCOL_NAME=ROI_NAME")
        if key in out:
            raise MappingError(f"--map {key} is given twice")
        out[key] = tuple(v.strip() for v in value.split(",") if v.strip())
    return out


def load_mapping_file(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A mapping file: YAML (``SpinalCord: cord_PRV``, ``PTV: [PTV_T8, PTV_L1]``, an ROI number
    quoted: ``SpinalCord: '#7'``) or lines of ``NAME=ROI`` (``#`` at the start of a line or after
    a space starts a comment; ``SpinalCord=#7`` names ROI number 7)."""
    from rtqa.protocol.yaml_lines import read_yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{p}: cannot read the mapping file ({exc.strerror or exc})") from None
    lines = [re.split(r"(?:^|\s)#", ln, maxsplit=1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and all("=" in ln and ":" not in ln for ln in lines):
        return parse_mapping_args(lines)
    data = read_yaml(p)
    if not isinstance(data, dict):
        raise MappingError(f"{p}: expected a mapping of protocol names to ROI names")
    out: dict[str, tuple[str, ...]] = {}
    for key, value in data.items():
        if isinstance(value, str) and isinstance(key, str):
            out[key] = (value,)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[str(key)] = tuple(value)
        else:
            line = data.key_lines.get(key) if hasattr(data, "key_lines") else None
            where = f"{p}:{line}" if line else str(p)
            raise MappingError(f"{where}: {key!r} must map to an ROI name or a list of names")
    return out
