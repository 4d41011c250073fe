"""Shared plotting style: Agg backend, colour-blind-safe colours, markers, log axes, saving."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

DPI = 150
FORMATS = ["png", "pdf"]  # what save_figure writes; the command's --no-pdf drops the PDF

# Okabe & Ito (2008) first, then Paul Tol's "muted" set for more than seven
# series: neighbours differ in hue and lightness, so consecutive methods of a
# family stay apart; yellow comes late (weak on white).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
           "#332288", "#999933", "#882255", "#44AA99", "#AA4499", "#117733",
           "#DDCC77", "#CC6677", "#F0E442", "#888888"]
BASELINE_COLOR = "#000000"
FAMILY_ORDER = ["baseline", "quant", "gear", "drop", "composite"]
FAMILY_MARKERS = {"baseline": "*", "quant": "o", "gear": "s", "drop": "^", "composite": "D"}
# Markers for a series' second dimension (distinct outlines, all fillable).
DIM_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "p", "h", "<", ">"]
LINESTYLES = ["-", "--", ":", "-."]

plt.rcParams.update({
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
})


def family_rank(family: str) -> int:
    return FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER)


def family_marker(family: str) -> str:
    return FAMILY_MARKERS.get(family, "X")


def shade(color, level: float) -> tuple:
    """``color`` lightened (level 0) to darkened (level 1); 0.5 is about the colour itself."""
    r, g, b = to_rgb(color)
    amount = 0.55 - 0.85 * min(max(level, 0.0), 1.0)  # > 0: towards white, < 0: towards black
    if amount >= 0:
        return tuple(c + (1 - c) * amount for c in (r, g, b))
    return tuple(c * (1 + amount) for c in (r, g, b))


def sequential(n: int) -> list[tuple]:
    """``n`` colours of a colour-blind-safe sequential map (light to dark, no white)."""
    cmap = plt.get_cmap("viridis")
    if n <= 1:
        return [cmap(0.35)]
    return [cmap(0.9 - 0.8 * i / (n - 1)) for i in range(n)]


def number_text(value: float) -> str:
    """Tick text: 0.1, 0.25, 3, 1e-05 (plain decimals between 1e-3 and 1e4)."""
    if value == 0 or not math.isfinite(value):
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10 ** exponent
    return f"1e{exponent}" if abs(mantissa - 1) < 1e-9 else f"{mantissa:.2g}e{exponent}"


def log_axis(ax, which: str = "y", low: float | None = None, high: float | None = None) -> None:
    """A log axis whose tick labels read as plain numbers (0.2, 0.3, 0.5 between 0.1 and 1).

    With under a decade shown, ticks at 1-8 × 10^k (and 1.2, 1.5, 2.5);
    up to about a decade at 1, 2, 3, 5 and 7; up to three
    decades, at 1, 2 and 5; beyond that, at the powers of ten only.
    """
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    if low is None or high is None:
        low, high = (ax.get_ylim() if which == "y" else ax.get_xlim())
    decades = math.log10(high / low) if low > 0 and high > low else 3.0
    if decades <= 0.75:
        subs = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    elif decades <= 1.3:
        subs = (1.0, 2.0, 3.0, 5.0, 7.0)
    elif decades <= 3.5:
        subs = (1.0, 2.0, 5.0)
    else:
        subs = (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
    axis.set_major_formatter(FuncFormatter(lambda v, _: number_text(v)))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10)), numticks=30))
    axis.set_minor_formatter(NullFormatter())


def ratio_axis(ax, ratios) -> None:
    """x axis of compression ratios: log base 2 when they span 8× or more, ``4×`` labels."""
    ratios = [r for r in ratios if r and r > 0 and math.isfinite(r)]
    if ratios and max(ratios) / min(ratios) >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` (dpi 150) and ``<stem>.pdf`` (see FORMATS); close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{kind}" for kind in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return paths
