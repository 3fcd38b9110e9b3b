"""Draw the package's import graph by layer: `python docs/import_graph.py` writes
docs/import-graph.svg. Layers are rows (cli on top, core at the bottom); each arrow goes from
an importing package to an imported one, so every arrow points down or sideways within a
row (tests/test_layers.py asserts it)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from simulator.core.layers import LAYERS, layer_of  # noqa: E402
from tests.test_layers import imports  # noqa: E402


def node(module: str, modules: set[str]) -> str:
    """A module's box: layer.module (sub-packages as one box); `from x import name` counts as x."""
    while module not in modules and "." in module:
        module = module.rsplit(".", 1)[0]
    return ".".join(module.split(".")[1:3])


def main(out: Path) -> None:
    pairs = imports()
    modules = {a for a, _ in pairs}
    edges = {(node(a, modules), node(b, modules)) for a, b in pairs
             if layer_of(a) and layer_of(b) and node(a, modules) != node(b, modules)}
    boxes = sorted({n for e in edges for n in e}, key=lambda n: (LAYERS.index(n.split(".")[0]), n))
    rows = {layer: [b for b in boxes if b.split(".")[0] == layer] for layer in LAYERS}
    pos = {}
    for y, layer in enumerate(LAYERS):
        for i, b in enumerate(rows[layer]):
            pos[b] = ((i + 1) / (len(rows[layer]) + 1), y)
    fig, ax = plt.subplots(figsize=(12, 9))
    for a, b in sorted(edges):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        color = "#d62728" if y1 > y0 else "#999999"  # an upward arrow would be drawn red
        ax.annotate("", (x1, y1 + 0.12 if y1 < y0 else y1), (x0, y0 - 0.12 if y1 < y0 else y0),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 0.6, "alpha": 0.7})
    for b, (x, y) in pos.items():
        ax.text(x, y, b, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "#4c72b0"})
    ax.set_yticks(range(len(LAYERS)), LAYERS)
    ax.set_xticks([])
    ax.set_ylim(-0.6, len(LAYERS) - 0.4)
    ax.set_title("clustersim imports by layer (arrows: importer -> imported; none points up)")
    fig.savefig(out, bbox_inches="tight", metadata={"Date": None})
    print(f"wrote {out}: {len(boxes)} packages, {len(edges)} import edges")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "import-graph.svg")
