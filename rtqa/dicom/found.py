"""Everything a scan read from the files, before linking."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rtqa.dicom.case_dose import DoseHeader
from rtqa.dicom.image_references import ImageReferences
from rtqa.dicom.images import ImageSlice
from rtqa.model import Note, Plan, Registration, StructureSet, TreatmentRecord


@dataclass
class Found:
    """Everything read from the files, before linking."""

    plans: dict[str, Plan] = field(default_factory=dict)
    structure_sets: dict[str, StructureSet] = field(default_factory=dict)
    doses: dict[str, DoseHeader] = field(default_factory=dict)
    records: list[TreatmentRecord] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    slices: dict[str, list[ImageSlice]] = field(default_factory=lambda: defaultdict(list))
    image_refs: dict[str, ImageReferences] = field(default_factory=dict)  # by structure set UID
    notes: list[Note] = field(default_factory=list)
    files: Counter = field(default_factory=Counter)
