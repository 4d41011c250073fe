"""What each parameter of an ablated method buys: metric against parameter value.

For a series with two or more numeric dimensions (e.g. GEAR's bits, rank and
sparsity): x = dimension 0, one line per value of dimension 1 (sequential
colours), one column per value of dimension 2, further dimensions by line
style.  Rows: attention-output, K and V error, and bits per element (the
cost).  Other configurations that share the column's parameter value (e.g.
KIVI at the same bit width) are dashed horizontal reference lines.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import style
from .ablation import Dim, Series
from .encoding import Encoding, dim_name, dim_value, dim_value_text
from .figure import Figure, slug
from .metrics import BITS, BITS_LABEL, ERROR_METRICS
from .plot_pareto import draw_intervals
from .stats import describe_interval

plt = style.plt
MIN_SPECS = 6
MAX_REFERENCES = 3


def ablation_series(enc: Encoding) -> list[Series]:
    """Series worth an ablation figure: two or more dimensions, at least MIN_SPECS specs."""
    return [s for s in enc.structure.series.values()
            if len(s.dims) >= 2 and len(s.specs) >= MIN_SPECS]


def _references(configs: pd.DataFrame, enc: Encoding, series: Series,
                column: Dim | None, value: float | None) -> pd.DataFrame:
    """Other configurations to draw as reference lines in one column."""
    others = configs[~configs["spec"].isin(series.specs) & (configs["family"] != "baseline")]
    if column is not None:
        param = column.params[0]
        match = others["spec"].map(lambda s: enc.structure.parsed[s].get(param))
        others = others[pd.to_numeric(match, errors="coerce") == value]
    return others.sort_values("attn_out_rel", na_position="last").head(MAX_REFERENCES)


def _scale(ax, values: pd.Series) -> None:
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 8:
        style.log_axis(ax, "y", values.min(), values.max())


def plot_ablation(configs: pd.DataFrame, enc: Encoding, series: Series, out_dir: Path,
                  interval: str) -> Figure:
    dims = series.dims
    x_dim, line_dim = dims[0], dims[1]
    col_dim = dims[2] if len(dims) > 2 else None
    style_dims = dims[3:]
    parsed = enc.structure.parsed
    rows = configs[configs["spec"].isin(series.specs)].copy()
    for i, dim in enumerate(dims):
        rows[f"_d{i}"] = rows["spec"].map(lambda s, d=dim: d.value(parsed[s]))
    metrics = {**ERROR_METRICS, BITS: f"{BITS_LABEL} (cost)"}
    columns = list(col_dim.values) if col_dim else [None]
    fig, axes = plt.subplots(len(metrics), len(columns),
                             figsize=(4.4 * len(columns) + 2.6, 2.9 * len(metrics) + 0.8),
                             layout="constrained", squeeze=False, sharex=True)
    colors = style.sequential(len(line_dim.values))
    combos = list(product(*[d.values for d in style_dims])) or [()]
    xs = np.arange(len(x_dim.values), dtype=float)
    spread = 0.06 * (np.arange(len(line_dim.values)) - (len(line_dim.values) - 1) / 2)
    counts = []
    for r, (metric, label) in enumerate(metrics.items()):
        for c, col_value in enumerate(columns):
            ax = axes[r, c]
            panel = rows if col_dim is None else rows[rows["_d2"] == col_value]
            for j, line_value in enumerate(line_dim.values):
                for k, combo in enumerate(combos):
                    line = panel[panel["_d1"] == line_value]
                    for d, v in enumerate(combo):
                        line = line[line[f"_d{3 + d}"] == v]
                    line = line.sort_values("_d0")
                    if line.empty:
                        continue
                    x = xs[[x_dim.values.index(v) for v in line["_d0"]]] + spread[j]
                    ax.plot(x, line[metric], color=colors[j], marker="o", ms=4, lw=1.5,
                            ls=style.LINESTYLES[k % len(style.LINESTYLES)], zorder=3)
                    if f"{metric}_lo" in line.columns:
                        draw_intervals(ax, x, line[f"{metric}_lo"], line[f"{metric}_hi"],
                                       [colors[j]] * len(line))
                    counts += list(line["n_dumps"])
            for _, ref in _references(configs, enc, series, col_dim, col_value).iterrows():
                if pd.notna(ref[metric]):
                    color = enc.color(ref["spec"])
                    ax.axhline(ref[metric], color=color, ls="--", lw=1.2, zorder=2)
                    ax.annotate(enc.label(ref["spec"]), (1.0, ref[metric]),
                                xycoords=("axes fraction", "data"), xytext=(-2, 2),
                                textcoords="offset points", ha="right", va="bottom",
                                fontsize=8, color=color)
            _scale(ax, pd.concat([panel[metric], _references(
                configs, enc, series, col_dim, col_value)[metric]]).dropna())
            if r == 0 and col_dim is not None:
                ax.set_title(dim_value_text(col_dim, col_value))
            if c == 0:
                ax.set_ylabel(label + (" ↓" if metric != BITS else ""))
            if r == len(metrics) - 1:
                ax.set_xticks(xs, [dim_value(x_dim, v) for v in x_dim.values])
                ax.set_xlabel(f"{dim_name(x_dim)} ({_meaning(x_dim)})")
    handles = [Line2D([], [], color=colors[j], marker="o", ms=4, lw=1.5,
                      label=dim_value_text(line_dim, v)) for j, v in enumerate(line_dim.values)]
    for k, combo in enumerate(combos if style_dims else []):
        handles.append(Line2D([], [], color="0.3", ls=style.LINESTYLES[k % 4], label=", ".join(
            dim_value_text(d, v) for d, v in zip(style_dims, combo))))
    handles.append(Line2D([], [], color="0.3", ls="--", label="other methods (reference)"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               title=f"{dim_name(line_dim)} ({_meaning(line_dim)})")
    name = enc.series_label(series)
    what = describe_interval(counts, interval)
    by_col = f", one column per {dim_name(col_dim)}" if col_dim else ""
    fig.suptitle(f"{name}: effect of {dim_name(x_dim)} (x axis) and {dim_name(line_dim)} "
                 f"(colour){by_col}; {what}")
    stem = f"ablation_{slug(name)}"
    caption = (f"{name}: attention-output, K and V error and bits per element against "
               f"{dim_name(x_dim)}, one line per {dim_name(line_dim)}{by_col}; dashed lines are "
               f"other configurations{' at the same ' + dim_name(col_dim) if col_dim else ''} "
               f"for reference ({what}).")
    return Figure(stem, f"{name} ablation", caption, style.save_figure(fig, out_dir, stem))


def _meaning(dim: Dim) -> str:
    from .labels import ALIAS_MEANINGS, ALIASES
    alias = ALIASES.get(dim.params[0])
    return ALIAS_MEANINGS.get(alias, dim.params[0]) if alias else dim.params[0]
