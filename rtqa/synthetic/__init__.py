"""Synthetic DICOM-RT data: closed-form phantoms, case specifications and their writers.

``python -m rtqa.synthetic sample_data`` regenerates the committed sample cases (byte for byte);
``python -m rtqa.synthetic OUT --cases N [--seed S]`` writes N varied cases for batch tests.
"""

from __future__ import annotations

from pathlib import Path

from rtqa.synthetic.cases import sample_cases

CASE_NAMES = (
    "spine_3fx",
    "spine_3fx_overrun",
    "spine_3fx_nocord",
    "lung_5fx",
    "bone_1fx",
    "spine_prior",
    "spine_prior_exceeds",
)


def generate_sample_data(root: str | Path) -> list[Path]:
    """Write the seven sample cases and ``README.md`` into ``root``; return the paths."""
    from rtqa.synthetic.readme import readme_text
    from rtqa.synthetic.write import write_case

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cases = sample_cases()
    paths: list[Path] = []
    for case in cases:
        paths += write_case(case, root)
    readme = root / "README.md"
    readme.write_text(readme_text(cases), encoding="utf-8")
    return [*paths, readme]


def generate_batch(root: str | Path, n: int, seed: int = 0):
    """Write ``n`` varied cases (about 10 % corrupt) and ``manifest.json`` into ``root``."""
    from rtqa.synthetic.batch import generate_batch as _generate

    return _generate(root, n, seed)


__all__ = ["CASE_NAMES", "generate_batch", "generate_sample_data", "sample_cases"]
