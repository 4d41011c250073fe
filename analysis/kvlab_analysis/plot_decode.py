"""Model in the loop: how compression error compounds over decoding.

Reads the per-step rows of ``kvlab decode --csv`` files or of a sweep's
``decode_steps.csv`` (one run per job or file; mode from the ``mode``
column, configuration from ``compressor``).  Per configuration and decode
step, runs on several dumps are averaged with an interval band.  Panels,
only those with data:

* teacher-forced: next-token KL(p_ref ‖ p_comp) (running mean), cumulative
  top-1 agreement, last-hidden-state error (running mean), and the
  perplexity ratio so far, exp(Σ(ce_comp − ce_ref) / n);
* free-running: cumulative token match rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import style
from .encoding import Encoding
from .figure import Figure
from .stats import describe_interval, mean_interval

plt = style.plt
DEFAULT_WINDOW = 16


def running_mean(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def per_run_curves(decode: pd.DataFrame, window: int) -> pd.DataFrame:
    """Add the plotted per-step quantities of every run (job)."""
    parts = []
    for _, run in decode.sort_values(["job_id", "step"]).groupby("job_id", sort=False):
        run = run.copy()
        n = np.arange(1, len(run) + 1)
        run["kl_smooth"] = running_mean(run["kl"], window).to_numpy()
        run["hidden_smooth"] = running_mean(run["hidden_rel"], window).to_numpy()
        run["top1_cum"] = run["top1_agree"].cumsum().to_numpy() / n
        run["ppl_ratio_cum"] = np.exp((run["ce_comp"] - run["ce_ref"]).cumsum().to_numpy() / n)
        match = (run["token_ref"] == run["token_comp"]).astype(float)
        run["match_cum"] = match.cumsum().to_numpy() / n
        parts.append(run)
    return pd.concat(parts, ignore_index=True)


# (mode, column, title, y label, log scale)
PANELS = [
    ("teacher", "kl_smooth", "next-token KL, teacher-forced", "KL(p_ref ‖ p_comp), nats", True),
    ("teacher", "top1_cum", "top-1 agreement, teacher-forced", "top-1 agreement so far", False),
    ("teacher", "hidden_smooth", "last hidden state error, teacher-forced",
     "‖h_comp − h_ref‖ / ‖h_ref‖", True),
    ("teacher", "ppl_ratio_cum", "perplexity ratio, teacher-forced",
     "perplexity comp / ref so far", False),
    ("free", "match_cum", "free-running greedy generation", "token match rate so far", False),
]


def plot_decode(decode: pd.DataFrame, enc: Encoding, out_dir: Path, interval: str,
                window: int = DEFAULT_WINDOW, stem: str = "model_in_the_loop") -> Figure | None:
    if decode is None or decode.empty:
        return None
    runs = per_run_curves(decode, window)
    columns = sorted({p[1] for p in PANELS})
    curves = mean_interval(runs, ["spec", "mode", "step"], columns, interval)
    modes = set(curves["mode"])
    panels = [p for p in PANELS if p[0] in modes]
    ncols = 2 if len(panels) <= 4 else 3
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols + 2.8, 3.6 * nrows + 0.6),
                             layout="constrained", squeeze=False)
    specs = [s for s in enc.structure.parsed if s in set(curves["spec"])]
    specs.sort(key=enc.sort_key)
    colors = enc.line_colors(specs)
    for ax, (mode, column, title, ylabel, log) in zip(axes.flat, panels):
        positive = []
        for spec in specs:
            curve = curves[(curves["spec"] == spec) & (curves["mode"] == mode)]
            if curve.empty:
                continue
            y = curve[column].to_numpy(float)
            if log:
                if not np.nanmax(y, initial=0) > 0:
                    continue  # an exact run (FP16) has nothing to show on a log axis
                positive.append(y[y > 0])
            color = colors[spec]
            x = curve["step"].to_numpy(float)
            lo, hi = curve[f"{column}_lo"].to_numpy(float), curve[f"{column}_hi"].to_numpy(float)
            band = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
            if band.any():
                ax.fill_between(x, np.where(band, np.maximum(lo, 1e-12) if log else lo, np.nan),
                                np.where(band, hi, np.nan), color=color, alpha=0.15, lw=0)
            ax.plot(x, y, color=color, lw=1.5)
        ax.set_title(title + (f" (running mean of {window})" if column.endswith("_smooth")
                              else ""))
        ax.set_xlabel("decode step")
        ax.set_ylabel(ylabel)
        if log and positive:
            values = np.concatenate(positive)
            style.log_axis(ax, "y", values.min(), values.max())
    spare = list(axes.flat)[len(panels):]
    for ax in spare:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colors[s], lw=2, label=enc.label(s)) for s in specs]
    if spare:  # the legend takes the free slot rather than leaving it empty
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles=handles, loc="center", frameon=False, title="compressor")
    else:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False, title="compressor")
    what = describe_interval(curves.groupby(["spec", "mode"])["n"].max(), interval)
    fig.suptitle("Model in the loop: compressed vs uncompressed KV cache; " + what)
    kinds = " and free-running" if "free" in modes else ""
    caption = ("The model decoding with a compressed cache against the same model with the "
               f"FP16 cache (teacher-forced{kinds}): next-token KL, top-1 agreement, last hidden "
               f"state error and perplexity ratio against decode step, one line per compressor "
               f"({what}).")
    return Figure(stem, "Model in the loop", caption, style.save_figure(fig, out_dir, stem))
