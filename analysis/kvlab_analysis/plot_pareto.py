"""Error vs compression ratio, one panel per error metric (and per facet value).

Each configuration is a point at its mean over dumps with an interval bar.
Points of one series are joined along its first dimension (light to dark
shade), the marker tells its second dimension; a third dimension, when the
largest series has one, splits the figure into columns.  The thick grey line
is the Pareto front of the panel.  With few points every point is labelled
directly; otherwise the legend names the series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from . import style
from .encoding import Encoding, dim_name, dim_value_text
from .figure import Figure
from .metrics import ERROR_METRICS, RATIO, RATIO_LABEL
from .pareto import pareto_front
from .placement import label_all
from .stats import describe_interval

plt = style.plt
MAX_DIRECT_LABELS = 20
MAX_LABELLED_IN_SERIES = 6


def draw_intervals(ax, x, lo, hi, colors, horizontal: bool = False) -> None:
    """Interval bars as one collection (log-safe: bars must have a positive low end).

    Vertical bars at ``x`` from ``lo`` to ``hi``; ``horizontal`` swaps the axes.
    """
    x, lo, hi = (np.asarray(v, float) for v in (x, lo, hi))
    ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi) & (hi > lo) & (hi > 0)
    if not ok.any():
        return
    lo = np.where(lo > 0, lo, hi / 1000)
    segments = [[(xi, a), (xi, b)] if not horizontal else [(a, xi), (b, xi)]
                for xi, a, b in zip(x[ok], lo[ok], hi[ok])]
    colors = [c for c, keep in zip(colors, ok) if keep]
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.2, zorder=2.5))


def scatter_grouped(ax, x, y, colors, markers, size: float = 42, zorder: float = 3) -> None:
    """One scatter call per marker shape (far fewer artists than one per point)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    markers = np.asarray(markers, dtype=object)
    colors = list(colors)
    for marker in dict.fromkeys(markers):
        pick = markers == marker
        ax.scatter(x[pick], y[pick], c=[colors[i] for i in np.flatnonzero(pick)],
                   marker=marker, s=size, edgecolor="black", linewidth=0.5, zorder=zorder)


def _series_lines(ax, part: pd.DataFrame, metric: str, enc: Encoding) -> None:
    """Join the points of a one-dimensional series (a sweep of one parameter) in order."""
    series = enc.series(part["spec"].iloc[0])
    dims = enc.dims(series)
    if len(dims) != 1 or len(part) < 2:  # with more, markers and shades say it; lines clutter
        return
    parsed = enc.structure.parsed
    line = part.assign(_d0=part["spec"].map(lambda s: dims[0].value(parsed[s])))
    line = line.sort_values("_d0")
    ax.plot(line[RATIO], line[metric], color=enc.series_color(series), lw=1.0, alpha=0.55,
            zorder=2)


def _panel(ax, rows: pd.DataFrame, metric: str, label: str, enc: Encoding) -> None:
    valid = rows[rows[metric].notna() & rows[RATIO].notna()]
    shown = valid[valid[metric] > 0]
    front = pareto_front(valid, metric)
    front = front[front[metric] > 0]
    if len(front) >= 2:
        ax.plot(front[RATIO], front[metric], color="0.55", lw=6, alpha=0.3, zorder=1,
                solid_capstyle="round", solid_joinstyle="round")
    for _, part in shown.groupby(shown["spec"].map(enc.structure.series_of)):
        _series_lines(ax, part, metric, enc)
    colors = [enc.color(s) for s in shown["spec"]]
    if f"{metric}_lo" in shown.columns:
        draw_intervals(ax, shown[RATIO], shown[f"{metric}_lo"], shown[f"{metric}_hi"], colors)
    scatter_grouped(ax, shown[RATIO], shown[metric], colors,
                    [enc.marker(s) for s in shown["spec"]])
    if shown.empty:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
        return
    ax.margins(x=0.08, y=0.1)
    style.log_axis(ax, "y", shown[metric].min() * 0.9, shown[metric].max() * 1.1)
    style.ratio_axis(ax, shown[RATIO])
    notes = []
    if (n_zero := len(valid) - len(shown)):
        notes.append(f"{n_zero} with zero error not shown")
    if (n_nan := len(rows) - len(valid)):
        notes.append(f"{n_nan} without this metric")
    ax.set_xlabel(RATIO_LABEL + (f"\n({'; '.join(notes)})" if notes else ""))
    ax.set_ylabel(f"{label} ↓")


def _label_everything(rows: pd.DataFrame, enc: Encoding) -> bool:
    """Label every point when there are few, and few that belong to a series with dimensions."""
    in_dims = sum(bool(enc.dims(s)) for s in rows["spec"])
    return len(rows) <= MAX_DIRECT_LABELS and in_dims <= MAX_LABELLED_IN_SERIES


def _legend_handles(configs: pd.DataFrame, enc: Encoding, direct: bool) -> list:
    handles = [Line2D([], [], color="0.55", lw=6, alpha=0.3, label="Pareto front")]
    families_seen = []
    for series in enc.ordered_series(configs["spec"]):
        dims = enc.dims(series)
        family = enc.family(series.specs[0])
        if direct and not dims:
            if family not in families_seen:
                families_seen.append(family)
            continue
        marker = style.family_marker(family) if len(dims) < 2 else "o"
        handles.append(Line2D([], [], color=enc.series_color(series), marker=marker,
                              lw=1 if len(dims) == 1 else 0,
                              markeredgecolor="black", markeredgewidth=0.5,
                              label=enc.series_description(series)
                              + (" (darker = larger)" if dims else "")))
        if len(dims) >= 2:
            handles.append(Line2D([], [], ls="", label=f"{enc.series_label(series)}, "
                                                       f"marker = {dim_name(dims[1])}:"))
            for i, value in enumerate(dims[1].values):
                handles.append(Line2D([], [], ls="", color="0.4",
                                      marker=style.DIM_MARKERS[i % len(style.DIM_MARKERS)],
                                      label="   " + dim_value_text(dims[1], value)))
    for family in families_seen:
        handles.append(Line2D([], [], ls="", color="0.4", marker=style.family_marker(family),
                              label=f"{family or 'other'} (marker)"))
    return handles


def plot_pareto(configs: pd.DataFrame, enc: Encoding, out_dir: Path, interval: str,
                metrics: dict | None = None, stem: str = "pareto") -> Figure:
    """Error vs compression ratio for every configuration (one row per spec in ``configs``)."""
    metrics = metrics or ERROR_METRICS
    facets = list(enc.facet.values) if enc.facet else [None]
    faceted = enc.facet is not None
    # Without facets: a 2-column grid whose spare slot holds the legend.
    nrows, ncols = ((len(metrics), len(facets)) if faceted
                    else ((len(metrics) + 2) // 2, min(2, len(metrics))))
    legend_width = 3.0 if faceted else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols + legend_width, 4.4 * nrows + 0.6),
                             layout="constrained", squeeze=False,
                             )
    counts = []
    labelled = []
    for m, (metric, label) in enumerate(metrics.items()):
        for f, value in enumerate(facets):
            ax = axes[m, f] if faceted else axes.flat[m]
            rows = configs[configs["spec"].map(lambda s: enc.in_facet(s, value))]
            _panel(ax, rows, metric, label, enc)
            title = label if value is None else f"{label}, {enc.facet_text(value)}"
            ax.set_title(title)
            counts += list(rows.loc[rows[metric].notna(), "n_dumps"])
            labelled.append((ax, rows, metric))
    direct_all = all(_label_everything(r, enc) for _, r, _ in labelled)
    handles = _legend_handles(configs, enc, direct_all)
    spare = [] if faceted else list(axes.flat)[len(metrics):]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles=handles, loc="center", frameon=False,
                        title="series" if len(handles) > 1 else None)
    else:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   title="series" if len(handles) > 1 else None)
    what = describe_interval(counts, interval)
    fig.suptitle(f"Error vs compression ratio (↓ better, → smaller cache); {what}")
    jobs = []
    for ax, rows, metric in labelled:
        drawn = rows[(rows[metric] > 0) & rows[RATIO].notna()]
        shown = drawn
        if not direct_all:  # the legend names the series with dimensions
            shown = drawn[drawn["spec"].map(lambda s: not enc.dims(s))]
        jobs.append((ax, shown[RATIO].to_numpy(), shown[metric].to_numpy(),
                     [enc.label(s) for s in shown["spec"]], drawn[RATIO].to_numpy(),
                     drawn[metric].to_numpy()))
    label_all(fig, jobs)
    facet_text = (f" Columns: {dim_name_of_facet(enc)}." if faceted else "")
    caption = (f"Attention-output, K and V error against compression ratio, one point per "
               f"configuration ({what}). The grey band is the Pareto front (no configuration "
               f"is both smaller and more accurate).{facet_text} Lower right is better.")
    return Figure(stem, "Error vs compression ratio", caption,
                  style.save_figure(fig, out_dir, stem))


def dim_name_of_facet(enc: Encoding) -> str:
    from .labels import ALIASES
    return f"{ALIASES.get(enc.facet.param) or enc.facet.param} = " + ", ".join(
        f"{v:g}" for v in enc.facet.values)
