"""RT objects written by a converter rather than exported by a planning system.

Converters from a planning system's own files to DICOM have written doses flipped
superior-inferior for prone patients, orientation logic for head-first supine only, and plans
"not fully correct" (domain catalogue of DICOM-RT inputs, V3). Such objects are recognised by
what the converter writes in Manufacturer (0008,0070) and in the file meta header's
ImplementationClassUID (0002,0012); each fingerprint below names the converter's source where it
is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from rtqa.model import Level, Note


@dataclass(frozen=True)
class Converter:
    """One converter's fingerprint: what it writes, and where that is set."""

    name: str
    manufacturers: tuple[str, ...] = ()
    implementation_class_uids: tuple[str, ...] = ()
    source: str = ""


#: The Pinnacle-to-DICOM converters; both write this implementation class UID.
PINNACLE_CONVERTER_UID = "1.2.826.0.1.3680043.8.498.75006884747854523615841001"

CONVERTERS = (
    Converter(
        "a Pinnacle-to-DICOM converter",
        manufacturers=("PyMedPhys Pinnacle Export", "Pinnacle Philips"),
        implementation_class_uids=(PINNACLE_CONVERTER_UID,),
        source=(
            "pymedphys _experimental/pinnacle/constants.py (Manufacturer 'PyMedPhys Pinnacle "
            "Export'); Pinnacle-tar-DICOM createDICOM.py (Manufacturer 'Pinnacle Philips'); "
            "both set the implementation class UID"
        ),
    ),
)


def converter_of(ds: Dataset) -> str:
    """What converter wrote ``ds`` and how that shows (``""`` when none is recognised), e.g.
    ``"a Pinnacle-to-DICOM converter (Manufacturer 'PyMedPhys Pinnacle Export')"``."""
    maker = str(ds.get("Manufacturer", "") or "").strip()
    meta = getattr(ds, "file_meta", None)
    implementation = str(meta.get("ImplementationClassUID", "") or "").strip() if meta else ""
    for c in CONVERTERS:
        signs = []
        if maker and maker.lower() in (m.lower() for m in c.manufacturers):
            signs.append(f"Manufacturer '{maker}'")
        if implementation in c.implementation_class_uids:
            signs.append(f"implementation class UID {implementation}")
        if signs:
            return f"{c.name} ({', '.join(signs)})"
    return ""


def converter_notes(ds: Dataset, path: str, what: str) -> list[Note]:
    """A WARNING naming the converter that wrote ``what`` (``"plan"``, ``"dose"``, ...), if any."""
    by = converter_of(ds)
    if not by:
        return []
    return [
        Note(
            Level.WARNING,
            f"{what} written by {by}, not exported by the planning system: such converters "
            "have written doses flipped for prone patients and plans not fully correct; "
            "compare with the planning system before relying on it",
            path,
        )
    ]


__all__ = ["CONVERTERS", "Converter", "converter_notes", "converter_of"]
