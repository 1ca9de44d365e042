"""Write a Spatial Registration object (rigid/affine matrices) from a
:class:`~rtqa.model.Registration`.

Convention (DICOM PS3.3 C.20.2): the object's own FrameOfReferenceUID is the Registered RCS; each
RegistrationSequence item names a source frame and a matrix that maps points of that frame into
the Registered RCS (mm, homogeneous column vectors, written row-major as 16 values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import format_number_as_ds

from rtqa.dicom.common import SPATIAL_REGISTRATION
from rtqa.dicom.write.base import Header, new_dataset, save
from rtqa.model import Registration


def write_registration(
    reg: Registration,
    path: str | Path,
    header: Header,
    *,
    series_instance_uid: str,
    series_number: int = 1,
    sop_instance_uid: str | None = None,
    chains: Mapping[str, Sequence[np.ndarray]] | None = None,
    content_label: str = "REG",
    content_datetime: datetime | None = None,
) -> Path:
    """Write ``reg`` to ``path`` and return the path.

    Every frame in ``reg.matrices`` becomes one RegistrationSequence item with one matrix of type
    ``reg.matrix_types`` (default RIGID). ``chains[uid]`` writes several matrices for that frame
    instead, in the order given (applied first to last: the composed map is ``M_n ... M_2 M_1``).
    """
    ds = new_dataset(
        header,
        sop_class_uid=SPATIAL_REGISTRATION,
        sop_instance_uid=sop_instance_uid or reg.sop_instance_uid,
        modality="REG",
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        frame_of_reference_uid=reg.frame_of_reference_uid,
        content_datetime=content_datetime,
    )
    ds.InstanceNumber = 1
    ds.ContentLabel = content_label
    ds.ContentDescription = "rigid registration"
    ds.ContentCreatorName = ""
    chains = chains or {}
    items = []
    for uid in list(reg.matrices) + [u for u in chains if u not in reg.matrices]:
        matrices = list(chains.get(uid, [reg.matrices[uid]] if uid in reg.matrices else []))
        matrix_type = reg.matrix_types.get(uid, "RIGID")
        item = Dataset()
        item.FrameOfReferenceUID = uid
        registration = Dataset()
        registration.MatrixSequence = DicomSequence(
            [_matrix_item(np.asarray(m, dtype=float), matrix_type) for m in matrices]
        )
        item.MatrixRegistrationSequence = DicomSequence([registration])
        items.append(item)
    ds.RegistrationSequence = DicomSequence(items)
    return save(ds, path)


def _matrix_item(matrix: np.ndarray, matrix_type: str) -> Dataset:
    if matrix.shape != (4, 4):
        raise ValueError(f"a registration matrix must be 4x4, got {matrix.shape}")
    item = Dataset()
    item.FrameOfReferenceTransformationMatrix = [
        format_number_as_ds(float(v)) for v in matrix.reshape(-1)
    ]
    item.FrameOfReferenceTransformationMatrixType = matrix_type
    return item
