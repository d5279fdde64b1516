"""Draw the README's picture from the stored spiral grid (chapter 4): projected samples for D × {x, ε, v}.

python scripts/readme_figure.py   # writes book/_assets/readme/spiral.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jitlib.book.toy import stored_grid

OUT = Path(__file__).resolve().parents[1] / "book" / "_assets" / "readme" / "spiral.png"
NAMES = {"x": "x-prediction", "eps": "ε-prediction", "v": "v-prediction"}


def main() -> None:
    grid = stored_grid()
    dims = sorted({c["dim"] for c in grid["cells"]})
    fig, axes = plt.subplots(3, len(dims), figsize=(2.2 * len(dims), 6.4), sharex=True, sharey=True)
    for row, target in enumerate(NAMES):
        for col, dim in enumerate(dims):
            cell = next(c for c in grid["cells"] if c["dim"] == dim and c["target"] == target)
            pts = np.asarray(cell["samples"], dtype=float)
            ax = axes[row, col]
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.6, color="#1f77b4")
            ax.set(xlim=(-1.4, 1.4), ylim=(-1.4, 1.4), xticks=[], yticks=[], aspect="equal")
            ax.text(0.03, 0.03, f"SW₁ {cell['sw1']:.3g}", transform=ax.transAxes, fontsize=7, color="0.3")
            if row == 0:
                ax.set_title(f"D = {dim}", fontsize=10)
            if col == 0:
                ax.set_ylabel(NAMES[target], fontsize=10)
    fig.suptitle(
        "A 2-D spiral hidden in D dimensions, same 256-wide MLP (samples projected back to the plane)",
        fontsize=9,
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
