"""Means and intervals over repeated runs (dumps, seeds) of one configuration.

``interval="ci95"``: the 95 % t-interval of the mean, mean ± t(0.975, n−1)·s/√n.
``interval="range"``: minimum to maximum.
``interval="auto"`` (default): ci95 with three or more runs, range with two
(a t-interval from two runs uses t = 12.7 and says little beyond "two runs").
One run has no interval (lo = hi = the value).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# t(0.975, df) for df = 1..30; beyond, 1.96 + 2.4/df is within 0.002.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
INTERVALS = ("auto", "ci95", "range")


def t975(df: int) -> float:
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def interval_kind(n: int, interval: str) -> str:
    """The interval actually drawn for ``n`` runs: "ci95", "range" or "none"."""
    if n <= 1:
        return "none"
    if interval == "auto":
        return "ci95" if n >= 3 else "range"
    return interval


def describe_interval(counts, interval: str, what: str = "dumps") -> str:
    """Caption text for the bars or bands, from the run counts of the drawn points."""
    counts = sorted({int(c) for c in counts if c and c > 0})
    if not counts or counts == [1]:
        return f"one run per configuration (no interval over {what})"
    kinds = {interval_kind(n, interval) for n in counts if n > 1}
    n_text = "/".join(str(n) for n in counts)
    parts = []
    if "ci95" in kinds:
        parts.append("95 % t-interval of the mean")
    if "range" in kinds:
        parts.append("min–max" + (" (2 runs)" if "ci95" in kinds else ""))
    return f"mean over {n_text} {what}; bars/bands: {' or '.join(parts)}"


def mean_interval(frame: pd.DataFrame, by: list[str], columns: list[str],
                  interval: str = "auto") -> pd.DataFrame:
    """One row per group: ``col``, ``col_lo``, ``col_hi`` for each column, and ``n``.

    NaNs are skipped; a column that is NaN in every run stays NaN.
    """
    grouped = frame.groupby(by, sort=True, dropna=False)[columns]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    low, high = grouped.min(), grouped.max()
    out = mean.copy()
    for column in columns:
        n = count[column].to_numpy()
        kinds = np.array([interval_kind(int(k), interval) for k in n])
        half = np.array([t975(int(k) - 1) for k in n]) * std[column].to_numpy() / np.sqrt(
            np.maximum(n, 1))
        lo = np.where(kinds == "ci95", mean[column] - half,
                      np.where(kinds == "range", low[column], mean[column]))
        hi = np.where(kinds == "ci95", mean[column] + half,
                      np.where(kinds == "range", high[column], mean[column]))
        out[f"{column}_lo"] = lo
        out[f"{column}_hi"] = hi
    out["n"] = frame.groupby(by, sort=True, dropna=False).size()
    return out.reset_index()
