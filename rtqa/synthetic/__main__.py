"""``python -m rtqa.synthetic OUTDIR [--cases N] [--seed S]``: write the synthetic data.

Without ``--cases``: the committed sample cases and their README (deterministic). With
``--cases N``: N varied cases (about 10 % corrupt) and a manifest, for batch tests and benchmarks.
"""

from __future__ import annotations

import argparse
import sys
import time

from rtqa.synthetic import generate_batch, generate_sample_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtqa.synthetic", description=__doc__)
    parser.add_argument("outdir", help="folder to write into (created if needed)")
    parser.add_argument("--cases", type=int, default=None, help="write N varied cases instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the varied cases")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.cases is None:
        paths = generate_sample_data(args.outdir)
        print(f"wrote {len(paths)} files into {args.outdir} in {time.perf_counter() - start:.1f} s")
    else:
        if args.cases < 1:
            parser.error("--cases must be at least 1")
        entries = generate_batch(args.outdir, args.cases, args.seed)
        bad = sum(1 for e in entries if e.corruption)
        print(
            f"wrote {len(entries)} cases ({bad} corrupt) into {args.outdir} "
            f"in {time.perf_counter() - start:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
