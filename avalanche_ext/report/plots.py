"""Figures: accuracy-matrix heatmaps and per-scenario comparison charts (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    """Lay out, write the figure as PNG (creating the folder) and free it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_heatmap(matrix: Sequence[Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Save the accuracy matrix (rows: after training on exp i; cols: exp j) as a heatmap."""
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * m.shape[1], 0.8 + 0.5 * m.shape[0]))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] < 0.6 else "black")
    ax.set_xlabel("evaluated on experience")
    ax.set_ylabel("after training on experience" if m.shape[0] > 1 else "after joint training")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def comparison_chart(
    names: Sequence[str], means: Sequence[float], stds: Sequence[float], families: Sequence[str],
    path: str | Path, title: str = "", xlabel: str = "average accuracy",
) -> Path:
    """Horizontal bars of mean ± std per recipe, coloured by taxonomy family."""
    palette = {"baseline": "#7f7f7f", "replay": "#1f77b4", "regularization": "#2ca02c",
               "architectural": "#ff7f0e", "hybrid": "#9467bd"}
    order = np.argsort(means)
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.32 * len(names)))
    y = np.arange(len(names))
    ax.barh(y, np.asarray(means)[order], xerr=np.asarray(stds)[order],
            color=[palette.get(families[i], "#333333") for i in order], capsize=2)
    ax.set_yticks(y)
    ax.set_yticklabels([names[i] for i in order], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    handles = [matplotlib.patches.Patch(color=c, label=f) for f, c in palette.items() if f in families]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    return _save(fig, path)
