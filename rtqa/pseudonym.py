"""Pseudonymisation of check results, after DICOM PS3.15 Annex E (Basic Application Level
Confidentiality Profile, with the Retain Longitudinal Temporal Information with Modified Dates
option) for the identifiers that can reach a report.

* Patient name and patient id become a keyed hash: HMAC-SHA256 with a secret key file, truncated
  to 16 hex digits and prefixed ``PSN-`` (the same patient always gets the same pseudonym under
  the same key; without the key it cannot be reversed or recomputed).
* Birth date, institution, physicians, operators, reviewers and accession numbers are removed
  (replaced by ``[removed]``) wherever their text occurs.
* Dates are shifted back by a keyed per-patient offset of 365 to 4014 days, so intervals (such
  as a 21-day completion window) stay true.
* UIDs are replaced by keyed ``2.25.<n>`` UIDs (consistent within a key).
* Paths lose their folders: a file is named ``<course pseudonym>/<file name>``; folder names
  between the batch root and the files are removed wherever they occur.

The identifiers are read from the course's own DICOM headers (:func:`collect_identifiers`) and
removed from every text field of a :class:`~rtqa.model.CheckResult` (finding messages, notes,
grouping, paths in messages) before anything is rendered. Over-removal is preferred to a leak.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

from rtqa.errors import UsageError
from rtqa.model import CheckResult, Note

PREFIX = "PSN-"
REMOVED = "[removed]"
HASH_CHARS = 16
MIN_KEY_BYTES = 16
MIN_SHIFT_DAYS = 365
SHIFT_RANGE_DAYS = 3650

#: Person-name attributes (PN) removed by the Basic Profile.
NAME_TAGS = (
    "PatientName",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "OperatorsName",
    "ReviewerName",
    "ResponsiblePerson",
)
#: Identifier and free-text attributes removed by the Basic Profile.
ID_TAGS = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "MedicalRecordLocator",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "PatientAddress",
    "PatientTelephoneNumbers",
)
DATE_TAGS = ("PatientBirthDate",)
DICOM_TAGS = NAME_TAGS + ID_TAGS + DATE_TAGS

_ISO_DATE = re.compile(r"(?<![\d.])(\d{4})-(\d{2})-(\d{2})(?![\d.])")
_DA_DATE = re.compile(r"(?<![\d.])((?:19|20)\d{2})(\d{2})(\d{2})(?![\d.])")
_UID = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}(?![\w.])")


def load_key(path: str | os.PathLike[str]) -> bytes:
    """The secret key: the bytes of ``path`` (at least 16). UsageError when unusable."""
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read the pseudonymisation key file {path}: {exc.strerror}"
        ) from None
    if len(key.strip()) < MIN_KEY_BYTES:
        raise UsageError(
            f"pseudonymisation key file {path} holds {len(key.strip())} bytes; at least "
            f"{MIN_KEY_BYTES} are needed (e.g. 32 random bytes: "
            'python -c "import secrets; print(secrets.token_hex(32))" > KEY)'
        )
    return key.strip()


@dataclass(frozen=True)
class Identifiers:
    """What identifies the patient in one course, as found in its files."""

    patient_ids: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()  # names, institutions, accession numbers ... (text)
    birth_dates: frozenset[str] = frozenset()  # YYYYMMDD
    paths: frozenset[str] = frozenset()  # input files (as given and absolute)
    folders: frozenset[str] = frozenset()  # folder names between the root and the files
    root: str | None = None


def _values(value: object) -> list[str]:
    if value is None:
        return []
    from pydicom.multival import MultiValue

    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def name_forms(name: str) -> set[str]:
    """Spellings of a DICOM person name (``FAMILY^GIVEN^MIDDLE``) as text may show it."""
    name = name.split("=")[0].strip()
    parts = [p.strip() for p in name.split("^") if p.strip()]
    forms = {name}
    if parts:
        for sep in (" ", "_", ", ", ",", "-", ""):
            forms.add(sep.join(parts))
            forms.add(sep.join([*parts[1:], parts[0]]))
        forms.update(p for p in parts if len(p) >= 3 and not p.isdigit())
    return {f for f in forms if f}


def collect_identifiers(
    files: Iterable[str], root: str | os.PathLike[str] | None = None
) -> Identifiers:
    """The identifiers of a course: Basic Profile attributes of its DICOM files (files that
    cannot be read are skipped), the file paths and the folder names below ``root``."""
    import pydicom

    ids: set[str] = set()
    removed: set[str] = set()
    births: set[str] = set()
    paths: set[str] = set()
    folders: set[str] = set()
    root_abs = os.path.abspath(root) if root is not None else None
    for path in files:
        paths.update({str(path), os.path.abspath(path)})
        if root_abs is not None:
            rel = os.path.relpath(os.path.abspath(path), root_abs)
            if not rel.startswith(".."):
                folders.update(p for p in Path(rel).parts[:-1] if len(p) >= 3)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # unreadable input: nothing of it can reach a report
            continue
        for tag in DICOM_TAGS:
            for value in _values(ds.get(tag)):
                if tag in NAME_TAGS:
                    removed.update(name_forms(value))
                elif tag in ("PatientID", "OtherPatientIDs"):
                    ids.add(value)
                elif tag in DATE_TAGS:
                    births.add(value)
                else:
                    removed.add(value)
    return Identifiers(
        patient_ids=frozenset(ids),
        removed=frozenset(removed),
        birth_dates=frozenset(births),
        paths=frozenset(paths),
        folders=frozenset(folders),
        root=root_abs,
    )


@dataclass
class Pseudonymizer:
    """Keyed pseudonyms, date offsets and text scrubbing for one key."""

    key: bytes
    _uids: dict[str, str] = field(default_factory=dict, repr=False)

    def digest(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.key, f"{purpose}\x00{value}".encode(), hashlib.sha256)
        return mac.hexdigest()

    @property
    def fingerprint(self) -> str:
        """Identifies the key (not reversible): part of each result's content key."""
        return self.digest("fingerprint", "rtqa")[:HASH_CHARS]

    def pseudonym(self, value: str, purpose: str = "patient") -> str:
        """``PSN-`` and 16 hex digits of HMAC-SHA256(key, purpose, value)."""
        return PREFIX + self.digest(purpose, value)[:HASH_CHARS]

    def date_offset_days(self, patient_id: str) -> int:
        """Days every date of this patient is moved back (365 to 4014)."""
        return MIN_SHIFT_DAYS + int(self.digest("date-shift", patient_id)[:8], 16) % (
            SHIFT_RANGE_DAYS
        )

    def uid(self, uid: str) -> str:
        """A keyed replacement UID under the ``2.25`` (UUID) root, consistent within the key."""
        if uid not in self._uids:
            self._uids[uid] = "2.25." + str(int(self.digest("uid", uid)[:32], 16))
        return self._uids[uid]

    def scrubber(self, ids: Identifiers, course_pseudonym: str) -> Scrubber:
        offset = self.date_offset_days(min(ids.patient_ids) if ids.patient_ids else "")
        return Scrubber(self, ids, course_pseudonym, offset)


@dataclass
class Scrubber:
    """Removes one course's identifiers from text and shifts its dates."""

    psn: Pseudonymizer
    ids: Identifiers
    course_pseudonym: str
    shift_days: int

    def __post_init__(self) -> None:
        literal: dict[str, str] = {}
        for path in self.ids.paths:
            literal[path] = f"{self.course_pseudonym}/{os.path.basename(path)}"
            literal[os.path.dirname(path)] = self.course_pseudonym
        if self.ids.root:
            literal[self.ids.root] = "ROOT"
        for pid in self.ids.patient_ids:
            literal[pid] = self.psn.pseudonym(pid)
        for text in self.ids.removed | self.ids.birth_dates:
            literal[text] = REMOVED
        for birth in self.ids.birth_dates:
            if len(birth) == 8 and birth.isdigit():
                literal[f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"] = REMOVED
        for folder in self.ids.folders:
            literal[folder] = self.course_pseudonym
        literal.pop("", None)
        self._patterns = [
            (re.compile(re.escape(k), re.IGNORECASE), v)
            for k, v in sorted(literal.items(), key=lambda kv: -len(kv[0]))
            if k
        ]

    def shift(self, day: date) -> date:
        return day - timedelta(days=self.shift_days)

    def _shift_match(self, m: re.Match[str], iso: bool) -> str:
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return m[0]
        moved = self.shift(day)
        return moved.isoformat() if iso else moved.strftime("%Y%m%d")

    def text(self, value: str | None) -> str | None:
        """``value`` with identifiers removed, paths pseudonymised, UIDs replaced, dates shifted."""
        if not value:
            return value
        out = value
        for pattern, replacement in self._patterns:
            out = pattern.sub(replacement.replace("\\", "\\\\"), out)
        out = _UID.sub(lambda m: self.psn.uid(m[0]), out)
        out = _ISO_DATE.sub(lambda m: self._shift_match(m, True), out)
        out = _DA_DATE.sub(lambda m: self._shift_match(m, False), out)
        return out

    def path(self, value: str | None) -> str | None:
        """A file path as ``<course pseudonym>/<file name>`` (the name scrubbed too)."""
        if not value:
            return value
        return f"{self.course_pseudonym}/{self.text(os.path.basename(value))}"

    def patient_id(self, value: str) -> str:
        return self.psn.pseudonym(value) if value else value


def course_pseudonym(psn: Pseudonymizer, patient_id: str, course_id: str) -> str:
    """The pseudonym of one course of one patient (used in file names and as course id)."""
    return psn.pseudonym(f"{patient_id}\x00{course_id}", "course")


def pseudonymize_result(result: CheckResult, scrub: Scrubber) -> CheckResult:
    """A copy of ``result`` with every identifier removed (see the module docstring).

    Numbers, statuses and limits are kept exactly; ``context`` (DICOM objects) is dropped.
    """
    t = scrub.text
    findings = [
        replace(
            f,
            message=t(f.message) or "",
            roi=t(f.roi),
            match=t(f.match),
            case_id=t(f.case_id),
        )
        for f in result.findings
    ]
    plans = [
        replace(
            p,
            case_id=t(p.case_id) or "",
            label=t(p.label) or "",
            sop_instance_uid=scrub.psn.uid(p.sop_instance_uid) if p.sop_instance_uid else None,
        )
        for p in result.plans
    ]
    notes = [
        Note(n.level, t(n.message) or "", scrub.path(n.path), n.attribute) for n in result.notes
    ]
    hashes = {scrub.path(k) or k: v for k, v in result.input_hashes.items()}
    curves = {t(k) or k: v for k, v in result.curves.items()}
    return replace(
        result,
        course_id=t(result.course_id) or "",
        patient_id=scrub.patient_id(result.patient_id),
        plans=plans,
        findings=findings,
        notes=notes,
        input_hashes=hashes,
        grouping=t(result.grouping) or "",
        curves=curves,
        context=None,
    )


__all__ = [
    "PREFIX",
    "REMOVED",
    "Identifiers",
    "Pseudonymizer",
    "Scrubber",
    "collect_identifiers",
    "course_pseudonym",
    "load_key",
    "name_forms",
    "pseudonymize_result",
]
