"""A large synthetic case for the speed benchmark: RT Dose + RT Structure Set, deterministic.

Dose grid 1 mm, ``nx * ny * nz`` voxels (default 300 x 300 x 240 = 21.6 million) holding a smooth
dose (three targets with a steep fall-off over a low bath); 30 structures on 2 mm planes: a body
outline on every plane, two PTVs, a spinal cord and an oesophagus running the whole length, and
ellipsoidal organs. Written with rtqa's DICOM writers.

Usage: python benchmarks/large_case.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from rtqa.dicom.common import make_uid
from rtqa.dicom.write.base import Header
from rtqa.dicom.write.dose import write_dose
from rtqa.dicom.write.structures import write_structure_set
from rtqa.model import ContourPlane, DoseGrid, PlanarPolygon, Roi, StructureSet

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid (or, with ``ends`` None on z, an elliptic cylinder over the whole stack)."""

    name: str
    kind: str  # RTROIInterpretedType
    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    points: int = 64

    def ring(self, z: float) -> np.ndarray | None:
        """The (N, 2) contour at plane z, or None where the shape does not reach."""
        cx, cy, cz = self.centre
        a, b, c = self.semi
        f = 1 - ((z - cz) / c) ** 2 if c > 0 else 1.0
        if f <= 0:
            return None
        s = np.sqrt(f)
        t = np.linspace(0, 2 * np.pi, self.points, endpoint=False)
        return np.c_[cx + a * s * np.cos(t), cy + b * s * np.sin(t)]


ORGANS = [
    "Lung_L",
    "Lung_R",
    "Heart",
    "Liver",
    "Stomach",
    "Kidney_L",
    "Kidney_R",
    "Spleen",
    "Trachea",
    "Bronchus",
    "GreatVes",
    "Chestwall",
    "Rib_L",
    "Rib_R",
    "Skin",
    "Duodenum",
    "Bowel_Small",
    "Pancreas",
    "Brachial_Plex",
    "Thyroid",
    "Humerus_L",
    "Humerus_R",
    "Sternum",
    "Vertebra",
    "Aorta",
]


def structures(n_total: int, zmin: float, zmax: float) -> list[Ellipsoid]:
    """Body + PTVs + cord + oesophagus + ellipsoidal organs, ``n_total`` in all, deterministic."""
    rng = np.random.default_rng(2015)
    zc, zh = (zmin + zmax) / 2, (zmax - zmin) / 2
    out = [
        Ellipsoid("BODY", "EXTERNAL", (0, 0, zc), (140, 110, 0), points=256),
        Ellipsoid("PTV_High", "PTV", (20, 10, zc), (18, 15, 16)),
        Ellipsoid("PTV_Low", "PTV", (-40, -20, zc + 30), (9, 8, 8)),
        Ellipsoid("SpinalCord", "ORGAN", (0, 60, zc), (5, 5, 0), points=32),
        Ellipsoid("Esophagus", "ORGAN", (5, 35, zc), (8, 7, 0), points=48),
    ]
    for name in ORGANS[: max(0, n_total - len(out))]:
        semi = (rng.uniform(8, 45), rng.uniform(8, 40), rng.uniform(10, min(60, zh * 0.8)))
        centre = (
            rng.uniform(-95 + semi[0], 95 - semi[0]),
            rng.uniform(-70 + semi[1], 70 - semi[1]),
            rng.uniform(zmin + semi[2], zmax - semi[2]),
        )
        out.append(Ellipsoid(name, "ORGAN", centre, semi))
    return out[:n_total]


def dose_field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(nz, ny, nx) Gy: 30 Gy and 20 Gy targets with a steep fall-off over a broad low-dose bath
    (2 Gy plus up to 10 Gy near the targets) inside the body ellipse, 0 outside."""
    out = np.empty((z.size, y.size, x.size), dtype=np.float32)
    yy, xx = np.meshgrid(y.astype(np.float32), x.astype(np.float32), indexing="ij")
    zc = float(z.mean())
    body = ((xx / 140) ** 2 + (yy / 110) ** 2) <= 1
    for k, zk in enumerate(z.astype(np.float32)):
        r1 = np.sqrt((xx - 20) ** 2 + (yy - 10) ** 2 + (zk - zc) ** 2)
        r2 = np.sqrt((xx + 40) ** 2 + (yy + 20) ** 2 + (zk - zc - 30) ** 2)
        e1 = np.exp(np.minimum((r1 - 18) / 3.0, 50.0))
        e2 = np.exp(np.minimum((r2 - 9) / 2.0, 50.0))
        d = 31.0 / (1 + e1) + 21.0 / (1 + e2)
        bath = 2.0 + 10.0 * np.exp(-((xx - 20) ** 2 + (yy - 10) ** 2 + (zk - zc) ** 2) / 7200.0)
        out[k] = np.where(body, d + bath, 0.0)
    return out


def write_case(out_dir: Path, shape=(300, 300, 240), n_structures: int = 30) -> tuple[Path, Path]:
    """Write ``RS.large.dcm`` and ``RD.large.dcm`` into ``out_dir``; return their paths."""
    nx, ny, nz = shape
    x = np.arange(nx) - (nx - 1) / 2
    y = np.arange(ny) - (ny - 1) / 2
    z = np.arange(nz) - (nz - 1) / 2
    tag = f"{nx}x{ny}x{nz}x{n_structures}"
    header = Header(
        patient_id="BENCH-LARGE",
        patient_name="Benchmark^Large",
        study_instance_uid=make_uid("bench-large", tag, "study"),
        study_datetime=datetime(2024, 1, 15, 9, 0, 0),
    )
    frame = make_uid("bench-large", tag, "frame")
    grid = DoseGrid(
        dose_gy=dose_field(x, y, z), x_mm=x, y_mm=y, z_mm=z, frame_of_reference_uid=frame
    )
    rd_path = write_dose(
        grid,
        out_dir / "RD.large.dcm",
        header,
        sop_instance_uid=make_uid("bench-large", tag, "dose"),
        series_instance_uid=make_uid("bench-large", tag, "dose-series"),
        referenced_plan_uid=make_uid("bench-large", tag, "plan"),
    )
    del grid

    planes = np.arange(z[0] + 1, z[-1], 2.0)  # 2 mm planes inside the dose grid
    rois = []
    for number, shape_ in enumerate(structures(n_structures, planes[0], planes[-1]), start=1):
        contour_planes = []
        for zp in planes:
            ring = shape_.ring(float(zp))
            if ring is not None:
                contour_planes.append(
                    ContourPlane(float(zp), (PlanarPolygon(np.round(ring, 3)),), ring_count=1)
                )
        rois.append(
            Roi(
                number=number,
                name=shape_.name,
                interpreted_type=shape_.kind,
                frame_of_reference_uid=frame,
                planes=tuple(contour_planes),
                contour_count=len(contour_planes),
            )
        )
    ss = StructureSet(
        path="",
        sop_instance_uid=make_uid("bench-large", tag, "structures"),
        label="LARGE",
        frame_of_reference_uid=frame,
        rois=tuple(rois),
    )
    rs_path = write_structure_set(
        ss,
        out_dir / "RS.large.dcm",
        header,
        series_instance_uid=make_uid("bench-large", tag, "structure-series"),
        referenced_frame_uid=frame,
    )
    return rs_path, rd_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT / "large")
    parser.add_argument("--quick", action="store_true", help="150 x 150 x 120 voxels")
    args = parser.parse_args(argv)
    shape = (150, 150, 120) if args.quick else (300, 300, 240)
    rs, rd = write_case(args.out, shape)
    print(rs)
    print(rd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
