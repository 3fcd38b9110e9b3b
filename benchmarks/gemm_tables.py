"""How well the GEMM-by-shape interpolation predicts measured shapes it has not seen.

For each shipped per-shape GEMM table (simulator/data/kernels/) and datatype, every measured
point is left out in turn and predicted from the others (hardware/gemm_table.py); printed are
the median, 90th percentile and largest |error| over all points and over training-sized ones
(m, n, k >= 1024). The OpenXLA grids step by 2x per dimension, so a left-out point's nearest
neighbours are twice as far as any shape between grid points: an upper bound on the
interpolation's error there.

    .venv/bin/python benchmarks/gemm_tables.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.system.hardware.gemm_table import GEMM_TABLES, gemm_table, held_out_errors


def main() -> None:
    print(
        f"{'table':<20}{'dtype':<6}{'points':>7}  {'all: median p90 max':<24}{'m,n,k >= 1024: median p90 max'}"
    )
    for name in GEMM_TABLES:
        table = gemm_table(name)
        for dtype in table.dtypes:
            err, big = held_out_errors(table, dtype)
            row = [
                f"{100 * np.median(e):.1f}% {100 * np.quantile(e, 0.9):.1f}% {100 * e.max():.1f}%"
                for e in (err, err[big])
            ]
            print(f"{name:<20}{dtype:<6}{len(err):>7}  {row[0]:<24}{row[1]} ({big.sum()} points)")


if __name__ == "__main__":
    main()
