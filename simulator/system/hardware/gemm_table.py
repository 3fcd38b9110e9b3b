"""GEMM efficiency by shape, from per-shape tables measured on real GPUs.

A GEMM's achieved throughput depends on its shape: small or thin GEMMs leave SMs idle (tile
and wave quantization), short K loops pay their pipeline fill, and skinny outputs turn
memory-bound. A table lists measured (batch, m, n, k) -> TFLOP/s points; `relative` returns
the shape's throughput over the table's best, so that

    GEMM efficiency(shape) = ceiling x relative(shape)

where the ceiling is the GPU's best-shape fraction of peak (the MAMF table, one method for
every GPU, `Efficiency.gemm`) and the table supplies only the shape dependence.

Between measured points the throughput is interpolated in log space over the nearest points
(inverse-distance weights on log2 of batch, m, n and k). Outside the measured range: a
larger dimension keeps the throughput at the largest measured size (more tiles only fill
waves better, so this errs slow), and a smaller one takes as long as the smallest measured
size (a kernel of fewer tiles than SMs costs one wave either way).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from simulator.core.cache import Memo
from simulator.core.resources import data_dir

# The shipped tables (simulator/data/kernels/gemm-<name>.csv), by the GPU they were measured on.
GEMM_TABLES = ("a100-pcie-simumax", "h100-sxm-xla", "b200-xla", "mi300x-xla")
NEIGHBOURS = 8  # the corners of a grid cell in (m, n, k), the usual interpolation stencil


@dataclass(frozen=True, kw_only=True)
class GemmTable:
    """Measured GEMM throughput by shape for one GPU, per datatype."""

    name: str
    source: str
    # dtype -> (points x 4) array of log2(b, m, n, k), and the matching log2 TFLOP/s
    coords: dict[str, np.ndarray] = field(compare=False, repr=False)
    log_tflops: dict[str, np.ndarray] = field(compare=False, repr=False)
    # `relative` by its arguments: the table is immutable, so a shape is interpolated once
    # (every evaluation of a scenario times the same few GEMM shapes again).
    memo: Memo[float | None] = field(
        default_factory=lambda: Memo(max_entries=1 << 16), compare=False, repr=False
    )

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(self.coords)

    def relative(self, dtype: str, m: int, n: int, k: int, batch: int = 1) -> float | None:
        """The shape's throughput over the table's best for `dtype` (None: not measured)."""
        return self.memo.get(
            (dtype, m, n, k, batch), lambda: self._interpolate(dtype, m, n, k, batch)
        )

    def _interpolate(self, dtype: str, m: int, n: int, k: int, batch: int) -> float | None:
        pts = self.coords.get(dtype)
        if pts is None:
            return None
        vals = self.log_tflops[dtype]
        q = np.log2(np.array([batch, m, n, k], dtype=float))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        # Below the smallest measured size the kernel takes as long as there: throughput
        # falls with the work (2^(q - lo) of it per dimension).
        below = float(np.minimum(q[1:] - lo[1:], 0.0).sum())
        qc = np.clip(q, lo, hi)
        d2 = ((pts - qc) ** 2).sum(axis=1)
        hits = d2 < 1e-12
        if hits.any():
            # A measured shape (several rows where layouts differ): their geometric mean.
            log_t = float(vals[hits].mean())
        else:
            near = np.argsort(d2)[:NEIGHBOURS]
            w = 1.0 / d2[near]
            log_t = float((w * vals[near]).sum() / w.sum())
        return 2.0 ** (log_t + below - float(vals.max()))


def parse_table(name: str, text: str) -> GemmTable:
    """A table from its CSV text: '#' lines (a 'Cite:' one names the source), a header with
    b, m, n, k and one `<dtype>_tflops` column per datatype."""
    lines = text.splitlines()
    comments = [ln[1:].strip() for ln in lines if ln.startswith("#")]
    rows = list(csv.DictReader(ln for ln in lines if ln and not ln.startswith("#")))
    dtypes = [c.removesuffix("_tflops") for c in rows[0] if c.endswith("_tflops")]
    coords, values = {}, {}
    for dt in dtypes:
        use = [r for r in rows if r[f"{dt}_tflops"]]
        coords[dt] = np.log2(np.array([[int(r[c]) for c in "bmnk"] for r in use], dtype=float))
        values[dt] = np.log2(np.array([float(r[f"{dt}_tflops"]) for r in use]))
    cite = [c.removeprefix("Cite:").strip() for c in comments if c.startswith("Cite:")]
    return GemmTable(name=name, source=cite[0] if cite else name, coords=coords, log_tflops=values)


@cache
def gemm_table(name: str) -> GemmTable:
    """A shipped table (simulator/data/kernels/gemm-<name>.csv), read once per process."""
    path = data_dir("kernels") / f"gemm-{name}.csv"
    return parse_table(name, path.read_text(encoding="utf-8"))


def held_out_errors(table: GemmTable, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Each measured point left out and predicted from the rest: |predicted / measured - 1|,
    and whether the point is training-sized (m, n, k >= 1024)."""
    pts, vals = table.coords[dtype], table.log_tflops[dtype]
    errors = []
    for i in range(len(vals)):
        keep = np.arange(len(vals)) != i
        rest = GemmTable(
            name="rest", source="", coords={dtype: pts[keep]}, log_tflops={dtype: vals[keep]}
        )
        b, m, n, k = (round(float(2**x)) for x in pts[i])
        rel = rest.relative(dtype, m, n, k, b)
        assert rel is not None
        errors.append(abs(rel * 2 ** vals[keep].max() / 2 ** vals[i] - 1))
    return np.array(errors), np.asarray((pts[:, 1:] >= 10).all(axis=1))
