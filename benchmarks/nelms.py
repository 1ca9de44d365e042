"""The runnable cases of the Nelms et al. (2015) analytical DVH set and their analytic values.

Pairing (see the data folder's README.md): dose file ``DOSE GRIDS/Linear_{AntPost|SupInf}_{N}mm_
Aligned.dcm`` for gradient ``Z(AP)|Y(SI)`` and dose voxel N mm; structure file
``STRUCTURES/<structure>.dcm`` (the misspelt ``Cone__02_0`` is ``Cone_02_0``), ROI number 2.
Rows with the 0.4x0.2x0.4 mm dose grid have no dose file and are left out (90 rows remain).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

ROI_NUMBER = 2
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference_data"
DEFAULT_DATA = (DEFAULT_DATA / "analytical" / "nelms2015").resolve()

# analytical_points.csv column -> metric key (values in cGy except the volume)
ANALYTIC_COLUMNS = {
    "volume_cc": "volume_cc",
    "dmean_cGy": "mean_gy",
    "dmin_cGy": "min_gy",
    "dmax_cGy": "max_gy",
    "d99_cGy": "D99",
    "d95_cGy": "D95",
    "d5_cGy": "D5",
    "d1_cGy": "D1",
    "d0.03cc_cGy": "D0.03cc",
}


@dataclass(frozen=True)
class NelmsCase:
    structure: str
    gradient: str  # "AP" (dose along DICOM y) or "SI" (along DICOM z)
    grid_mm: int
    structure_path: Path
    dose_path: Path
    analytic: dict[str, float]  # volume in cc, doses in Gy

    @property
    def label(self) -> str:
        return f"{self.structure} {self.gradient} {self.grid_mm}mm"


def runnable_cases(data_dir: Path) -> list[NelmsCase]:
    """Every row of ``analytical_points.csv`` whose dose grid is in the folder (1, 2, 3 mm)."""
    table = data_dir / "analytical_points.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: not found (give the data folder with --data)")
    cases = []
    with table.open(newline="") as fh:
        for row in csv.DictReader(fh):
            voxel = row["dose_voxel_mm"].strip()
            if voxel not in {"1", "2", "3"}:
                continue
            grad = "AP" if "AP" in row["gradient"] else "SI"
            structure = row["structure"].strip().replace("__", "_")
            dose_name = {"AP": "AntPost", "SI": "SupInf"}[grad]
            analytic = {}
            for col, key in ANALYTIC_COLUMNS.items():
                value = float(row[col])
                analytic[key] = value if key == "volume_cc" else value / 100.0
            case = NelmsCase(
                structure=structure,
                gradient=grad,
                grid_mm=int(voxel),
                structure_path=data_dir / "STRUCTURES" / f"{structure}.dcm",
                dose_path=data_dir / "DOSE GRIDS" / f"Linear_{dose_name}_{voxel}mm_Aligned.dcm",
                analytic=analytic,
            )
            for p in (case.structure_path, case.dose_path):
                if not p.is_file():
                    raise FileNotFoundError(f"{p}: missing (needed by {case.label})")
            cases.append(case)
    return cases
