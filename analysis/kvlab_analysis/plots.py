"""The three figure kinds of a results folder.

1. ``plot_pareto``: error vs compression ratio, one panel per error metric,
   points coloured by method, Pareto front lines per family and overall.
2. ``plot_error_accumulation``: attention-output error and KL vs decode step,
   one line per spec (the worst ``max_labelled`` by final error are labelled).
3. ``plot_layer_heatmap``: per-layer × kv-head relative error of K and V for
   one job.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from . import style
from .metrics import (ATTN_KL_LABEL, ATTN_OUT_LABEL, ERROR_METRICS, RATIO, RATIO_LABEL,
                      REL_ERR_LABEL, STEP_LABEL)
from .pareto import pareto_front, pareto_fronts_by

plt = style.plt

# --------------------------------------------------------------------------- Pareto


def _set_ratio_axis(ax, ratios: pd.Series) -> None:
    ratios = ratios.dropna()
    ratios = ratios[ratios > 0]
    if not ratios.empty and ratios.max() / ratios.min() >= 8:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.set_xlabel(RATIO_LABEL)


def _draw_front(ax, front: pd.DataFrame, metric: str, **line_kw) -> None:
    front = front[front[metric] > 0]  # log axis: zero error cannot be drawn
    if len(front) >= 2:
        ax.plot(front[RATIO], front[metric], **line_kw)


def _pareto_panel(ax, configs: pd.DataFrame, metric: str, label: str, colors: dict) -> None:
    valid = configs[configs[metric].notna() & configs[RATIO].notna()]
    shown = valid[valid[metric] > 0]
    _draw_front(ax, pareto_front(valid, metric), metric, color="0.6", lw=5, alpha=0.35,
                zorder=1, solid_capstyle="round")
    for family, front in pareto_fronts_by(valid, metric).items():
        if family == "baseline":  # a single fp16 point, no front to draw
            continue
        _draw_front(ax, front, metric, color="black", lw=1.1,
                    ls=style.family_linestyle(family), zorder=2)
    for (method, family), part in shown.groupby(["method", "family"]):
        ax.scatter(part[RATIO], part[metric], color=colors[method],
                   marker=style.family_marker(family), s=36, edgecolor="black",
                   linewidth=0.4, zorder=3)
    ax.set_yscale("log")
    ax.set_ylabel(f"{label} (lower is better)")
    ax.set_title(label)
    _set_ratio_axis(ax, shown[RATIO])
    notes = []
    if (n_zero := len(valid) - len(shown)):
        notes.append(f"{n_zero} config(s) with zero error not shown")
    if (n_nan := len(configs) - len(valid)):
        notes.append(f"{n_nan} config(s) without this metric")
    if notes:  # below the x label, where it cannot hide a point
        ax.set_xlabel(f"{RATIO_LABEL}\n({'; '.join(notes)})")
    if shown.empty:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")


def _pareto_legend(fig, configs: pd.DataFrame, colors: dict) -> None:
    method_handles = []
    for (method, family), _ in configs.groupby(["method", "family"]):
        method_handles.append(Line2D([], [], ls="", marker=style.family_marker(family),
                                     color=colors[method], markeredgecolor="black",
                                     markeredgewidth=0.4, label=f"{method} ({family})"))
    front_handles = [Line2D([], [], color="0.6", lw=5, alpha=0.35, label="overall front")]
    for family in sorted(set(configs["family"]) - {"baseline"}):
        front_handles.append(Line2D([], [], color="black", lw=1.1,
                                    ls=style.family_linestyle(family),
                                    label=f"{family} front"))
    fig.legend(handles=method_handles + front_handles, loc="center left",
               bbox_to_anchor=(1.0, 0.5), title="method (family) / Pareto fronts", frameon=False)


def plot_pareto(configs: pd.DataFrame, out_dir: Path, metrics: dict | None = None,
                stem: str = "pareto_error_vs_ratio") -> list[Path]:
    """Error vs compression ratio, one panel per metric (one row per config)."""
    metrics = metrics or ERROR_METRICS
    colors = style.method_colors(configs["method"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics) + 2.5, 4.8),
                             layout="constrained", squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics.items()):
        _pareto_panel(ax, configs, metric, label, colors)
    _pareto_legend(fig, configs, colors)
    fig.suptitle("Error vs compression ratio (mean over dumps; lines = Pareto fronts)")
    return style.save_figure(fig, out_dir, stem)


# --------------------------------------------------------------- error accumulation


def step_curves(steps: pd.DataFrame) -> pd.DataFrame:
    """Mean attn_out_rel / attn_kl per (spec, decode_step), averaged over dumps."""
    return (steps.groupby(["spec", "method", "decode_step"], as_index=False)
            [["attn_out_rel", "attn_kl"]].mean()
            .sort_values(["spec", "decode_step"]))


def _final_values(curves: pd.DataFrame, metric: str) -> pd.Series:
    """Last positive value of ``metric`` per spec, largest first (zero-error specs left out)."""
    last = curves[curves[metric] > 0].groupby("spec").tail(1)
    return last.set_index("spec")[metric].sort_values(ascending=False, kind="mergesort")


def plot_error_accumulation(steps: pd.DataFrame, out_dir: Path, max_labelled: int = 12,
                            stem: str = "error_accumulation") -> list[Path]:
    """attn_out_rel (left) and attn_kl (right) vs decode step, one line per spec."""
    curves = step_curves(steps)
    ranking = _final_values(curves, "attn_out_rel")
    labelled = list(ranking.index[:max_labelled])
    cmap = plt.get_cmap("tab10" if len(labelled) <= 10 else "tab20")
    colors = {spec: cmap(i % cmap.N) for i, spec in enumerate(labelled)}
    single_step = curves["decode_step"].nunique() <= 1

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    panels = [("attn_out_rel", ATTN_OUT_LABEL), ("attn_kl", ATTN_KL_LABEL)]
    for ax, (metric, label) in zip(axes, panels):
        for spec, curve in curves.groupby("spec"):
            curve = curve[curve[metric] > 0]  # log axis
            if curve.empty:
                continue
            style_kw = ({"color": colors[spec], "lw": 1.6, "zorder": 3} if spec in colors
                        else {"color": "0.75", "lw": 0.8, "zorder": 1})
            ax.plot(curve["decode_step"], curve[metric], marker="o" if single_step else None,
                    ms=3, **style_kw)
        ax.set_yscale("log")
        ax.set_xlabel(STEP_LABEL)
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs {STEP_LABEL}")
        ax.xaxis.get_major_locator().set_params(integer=True)

    handles = [Line2D([], [], color=colors[s], lw=1.6, label=s) for s in labelled]
    n_other = len(ranking) - len(labelled)
    if n_other > 0:
        handles.append(Line2D([], [], color="0.75", lw=0.8, label=f"{n_other} other spec(s)"))
    if (n_zero := curves["spec"].nunique() - len(ranking)):
        handles.append(Line2D([], [], ls="", label=f"{n_zero} spec(s) with zero error not shown"))
    title = (f"spec (top {len(labelled)} by final error)" if n_other > 0
             else "spec (by final error)")
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title=title,
               frameon=False)
    fig.suptitle("Error accumulation over decoding (mean over dumps; step 0 = end of prefill)")
    return style.save_figure(fig, out_dir, stem)


# ------------------------------------------------------------------------- heatmaps


def select_heatmap_jobs(ok: pd.DataFrame, layers: pd.DataFrame, limit: int,
                        key: str = "attn_out_rel") -> list[str]:
    """Jobs to draw: all non-baseline jobs with layer rows if at most ``limit``,
    otherwise the ``limit // 2`` best and the remaining worst by ``key``."""
    if limit <= 0:
        return []
    candidates = ok[(ok["family"] != "baseline") & ok["job_id"].isin(set(layers["job_id"]))]
    if key not in candidates or candidates[key].isna().all():
        key = "v_rel_err_global"
    ordered = candidates.sort_values([key, "job_id"], na_position="last", kind="mergesort")
    ids = list(ordered["job_id"])
    if len(ids) <= limit:
        return ids
    n_best = limit // 2
    n_worst = limit - n_best
    return ids[:n_best] + ids[len(ids) - n_worst:]


def layer_matrix(layers: pd.DataFrame, job_id: str, tensor: str) -> pd.DataFrame:
    """rel_err as a (layer × kv_head) table for one job and tensor."""
    part = layers[(layers["job_id"] == job_id) & (layers["tensor"] == tensor)]
    return part.pivot_table(index="layer", columns="kv_head", values="rel_err",
                            aggfunc="mean", dropna=False).sort_index().sort_index(axis=1)


def _heatmap_panel(fig, ax, matrix: pd.DataFrame, tensor: str) -> None:
    ax.grid(False)
    ax.set_xlabel("KV head")
    ax.set_ylabel("layer")
    ax.set_title(f"{tensor}: per-block {REL_ERR_LABEL}")
    if matrix.empty or matrix.isna().all().all():
        ax.text(0.5, 0.5, f"{tensor} not reconstructible\n(no error recorded)",
                transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis",
                      origin="lower", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=REL_ERR_LABEL)
    n_layers, n_heads = values.shape
    ax.set_xticks(range(n_heads), [str(h) for h in matrix.columns])
    step = max(1, n_layers // 16)
    ax.set_yticks(range(0, n_layers, step), [str(l) for l in matrix.index[::step]])
    if values.size <= 64:
        threshold = np.nanmean(values)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                        color="black" if value > threshold else "white")


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "job"


def plot_layer_heatmap(layers: pd.DataFrame, job: pd.Series, out_dir: Path) -> list[Path]:
    """K and V rel_err heatmaps (layer × kv head) for one job (a summary row)."""
    job_id = job["job_id"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for ax, tensor in zip(axes, ["K", "V"]):
        _heatmap_panel(fig, ax, layer_matrix(layers, job_id, tensor), tensor)
    fig.suptitle(f"{job['spec']}  —  job {job_id}, dump {job['dump']}")
    return style.save_figure(fig, out_dir, f"heatmap_{_safe_stem(str(job_id))}")
