"""Error accumulation over decoding: attention error and KL against decode step.

One line per configuration (mean over dumps, band = interval).  With more
than :data:`MAX_LINES_PER_PANEL` configurations the columns split them by
method family (shared y axis per row, so families stay comparable).  The KL
row shows the reverse KL when kvlab wrote it, otherwise the forward KL on a
floored axis (see :func:`metrics.kl_column`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import style
from .encoding import Encoding
from .figure import Figure
from .metrics import (ATTN_OUT_LABEL, DROPPED_LABEL, KL_DROP_COLUMN_NOTE, KL_FLOOR,
                      KL_FLOOR_NOTE, STEP_LABEL, kl_column)
from .stats import describe_interval, mean_interval

plt = style.plt
MAX_LINES_PER_PANEL = 8
MAX_CONFIGS = 16  # beyond, only presets and each series' best and worst are drawn
SMOOTH_FROM = 30  # evaluated steps from which a running mean is drawn


def step_curves(steps: pd.DataFrame, columns: list[str], interval: str) -> pd.DataFrame:
    """Mean and interval of ``columns`` per (spec, decode_step) over dumps."""
    return mean_interval(steps, ["spec", "decode_step"], columns, interval)


def select_specs(specs: list[str], curves: pd.DataFrame, enc: Encoding,
                 limit: int = MAX_CONFIGS) -> tuple[list[str], str]:
    """At most about ``limit`` configurations: all when they fit, else the presets and the
    best and worst (mean attention error) of each series; and a note saying so."""
    if len(specs) <= limit:
        return specs, ""
    error = curves.groupby("spec")["attn_out_rel"].mean()
    chosen = {s for s in specs if enc.labeller.catalog.preset_for(s)}
    for series in enc.structure.series.values():
        members = [s for s in series.specs if s in error.index]
        if len(members) <= 3:
            chosen.update(members)
        elif members:
            chosen.update({error[members].idxmin(), error[members].idxmax()})
    kept = [s for s in specs if s in chosen]
    return kept, (f"{len(kept)} of {len(specs)} configurations shown (presets, and the best and "
                  "worst of each series by mean attention error); steps.csv has all")


def _groups(specs: list[str], enc: Encoding) -> list[tuple[str, list[str]]]:
    """Columns of the figure: one when the lines fit, else one per family (per method
    inside a family that is still too crowded)."""
    specs = [s for s in specs if enc.family(s) != "baseline"]
    order = sorted(specs, key=enc.sort_key)
    if len(order) <= MAX_LINES_PER_PANEL:
        return [("", order)]
    groups = []
    for family in dict.fromkeys(enc.family(s) for s in order):
        members = [s for s in order if enc.family(s) == family]
        if len(members) <= MAX_LINES_PER_PANEL:
            groups.append((family, members))
            continue
        methods = dict.fromkeys(enc.structure.parsed[s].method for s in members)
        groups += [(method, [s for s in members if enc.structure.parsed[s].method == method])
                   for method in methods]  # a crowded family: one column per method
    return groups


def smoothing_window(n_points: int) -> int:
    """Points in the running mean drawn over long curves (about a tenth of the curve)."""
    return max(1, round(n_points / 10)) if n_points >= SMOOTH_FROM else 1


def _line(ax, curve: pd.DataFrame, metric: str, color, floor: float | None) -> None:
    """The mean curve with its band; long curves thin, with a bold running mean on top."""
    y = curve[metric].to_numpy(float)
    lo, hi = curve[f"{metric}_lo"].to_numpy(float), curve[f"{metric}_hi"].to_numpy(float)
    if floor is not None:
        y, lo, hi = (np.maximum(v, floor) for v in (y, lo, hi))
    keep = y > 0
    x = curve["decode_step"].to_numpy(float)
    window = smoothing_window(len(x))
    band = keep & np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
    if band.any():
        ax.fill_between(x, np.where(band, np.maximum(lo, y * 1e-3), np.nan),
                        np.where(band, hi, np.nan), color=color, alpha=0.15, lw=0, zorder=2)
    if window == 1:
        ax.plot(x[keep], y[keep], color=color, lw=1.6, marker="o" if len(x) <= 3 else None,
                ms=3, zorder=3)
        return
    ax.plot(x[keep], y[keep], color=color, lw=0.7, alpha=0.45, zorder=3)
    smooth = pd.Series(np.where(keep, y, np.nan)).rolling(window, center=True,
                                                          min_periods=1).mean()
    ax.plot(x, smooth, color=color, lw=2.2, zorder=4)


def _layout(groups, kl: str, floored: bool, droppers) -> list[list[str]]:
    """Metric of each panel, ``[row][column]``.

    With the reverse KL: attention error and KL.  With the forward-KL fallback,
    a column of droppers shows their dropped mass instead of a KL that is ~0;
    a single mixed column gets a third row for the droppers' dropped mass.
    """
    is_drop = [bool(specs) and all(s in droppers for s in specs) for _, specs in groups]
    second = ["dropped_mass" if floored and d else kl for d in is_drop]
    rows = [["attn_out_rel"] * len(groups), second]
    if floored and len(groups) == 1 and len(droppers) and not is_drop[0]:
        rows.append(["dropped_mass"])
    return rows


def _share_rows(axes, layout) -> None:
    """Share y between panels of a row that show the same metric."""
    for r, row in enumerate(layout):
        first: dict[str, object] = {}
        for c, metric in enumerate(row):
            if metric in first:
                axes[r, c].sharey(first[metric])
            else:
                first[metric] = axes[r, c]


def _log_rows(axes, layout, groups, curves, kl: str, floored: bool) -> None:
    """Log y axes (not for dropped mass), ticks chosen from the range of every panel that
    shares the axis (shared axes share their tick locator)."""
    for r, row in enumerate(layout):
        for metric in dict.fromkeys(row):
            if metric == "dropped_mass":
                continue
            columns = [c for c, m in enumerate(row) if m == metric]
            specs = [s for c in columns for s in groups[c][1]]
            values = curves.loc[curves["spec"].isin(specs), metric]
            values = values.clip(lower=KL_FLOOR) if (metric == kl and floored) else values
            values = values[values > 0]
            if len(values):
                style.log_axis(axes[r, columns[0]], "y", values.min(), values.max())


def plot_error_accumulation(steps: pd.DataFrame, enc: Encoding, out_dir: Path, interval: str,
                            stem: str = "error_vs_step") -> Figure | None:
    kl, kl_label, floored = kl_column(steps)
    labels = {"attn_out_rel": ATTN_OUT_LABEL, kl: kl_label, "dropped_mass": DROPPED_LABEL}
    droppers = set(steps.loc[steps["dropped_mass"] > 0, "spec"])
    curves = step_curves(steps, list(labels), interval)
    specs, selection_note = select_specs(list(curves["spec"].unique()), curves, enc)
    groups = _groups(specs, enc)
    if not any(specs for _, specs in groups):
        return None
    layout = _layout(groups, kl, floored, droppers)
    colors = enc.line_colors(specs)
    fig, axes = plt.subplots(len(layout), len(groups), squeeze=False, sharex=True,
                             figsize=(4.3 * len(groups) + 0.8, 3.0 * len(layout) + 1.6),
                             layout="constrained")
    _share_rows(axes, layout)
    for c, (family, specs) in enumerate(groups):
        for r, row in enumerate(layout):
            metric = row[c]
            ax = axes[r, c]
            floor = KL_FLOOR if (metric == kl and floored) else None
            for spec in specs:
                if metric == "dropped_mass" and spec not in droppers:
                    continue
                _line(ax, curves[curves["spec"] == spec], metric, colors[spec], floor)
            if r == 0 and family:
                ax.set_title(family)
            if c == 0 or metric != row[c - 1]:
                ax.set_ylabel(labels[metric])
            else:
                ax.tick_params(labelleft=False)
        axes[-1, c].set_xlabel(STEP_LABEL)
        handles = [Line2D([], [], color=colors[s], lw=1.8, label=enc.label(s)) for s in specs]
        axes[-1, c].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                           frameon=False, ncol=1)
    _log_rows(axes, layout, groups, curves, kl, floored)
    what = describe_interval(curves.groupby("spec")["n"].max(), interval)
    fig.suptitle(f"Error over decoding (step 0 = end of prefill); {what}")
    note = ""
    if floored and droppers:
        drawn_at_floor = any(s in droppers for c, (_, members) in enumerate(groups)
                             for s in members if layout[1][c] == kl)
        note = KL_FLOOR_NOTE if drawn_at_floor else KL_DROP_COLUMN_NOTE
    footer = "\n".join(n for n in (note, selection_note) if n)
    if footer:
        fig.supxlabel(footer, fontsize=8, color="0.3")
    note = "".join(f" {n[0].upper()}{n[1:]}." for n in (note, selection_note) if n)
    n_points = curves.groupby("spec").size().max()
    if smoothing_window(n_points) > 1:
        step = curves["decode_step"].drop_duplicates().sort_values().diff().median()
        window = smoothing_window(n_points)
        smooth = (f" Thin lines: every evaluated step; bold: running mean over {window} "
                  f"evaluations (~{window * step:g} steps).")
    else:
        smooth = ""
    split = (" Columns group the configurations by method family (or method)."
             if len(groups) > 1 else "")
    kl_text = kl_label.replace(", nats", " (nats)")
    caption = (f"Attention-output relative error and {kl_text} at each evaluated decode step, "
               f"one line per configuration ({what}).{smooth}{split}{note}"
               + (" Dropped attention mass: the reference attention on evicted tokens."
                  if any("dropped_mass" in row for row in layout) else ""))
    return Figure(stem, "Error over decoding", caption, style.save_figure(fig, out_dir, stem))
