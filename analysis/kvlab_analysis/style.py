"""Shared plotting style: Agg backend, colours per method, markers per family, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

DPI = 150

FAMILY_MARKERS = {"baseline": "*", "quant": "o", "gear": "s", "drop": "^", "composite": "D"}
FAMILY_LINESTYLES = {"baseline": (0, (1, 1)), "quant": "-", "gear": "--", "drop": ":",
                     "composite": "-."}

plt.rcParams.update({
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
})


def method_colors(methods) -> dict[str, tuple]:
    """A stable colour per method name (sorted order, tab10 then tab20)."""
    names = sorted(set(methods))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def family_marker(family: str) -> str:
    return FAMILY_MARKERS.get(family, "X")


def family_linestyle(family: str):
    return FAMILY_LINESTYLES.get(family, "-")


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` (dpi 150) and ``<stem>.pdf``; close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=DPI, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
