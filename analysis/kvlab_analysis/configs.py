"""Collapse per-job rows into one row per configuration (``spec``).

A sweep may run every configuration on several dumps; the Pareto plot and the
budget tables compare configurations, so numeric metrics are averaged over the
dumps of each spec (``n_dumps`` counts them), and the error metrics get an
interval (``<metric>_lo``, ``<metric>_hi``; see :mod:`.stats`).
"""

from __future__ import annotations

import pandas as pd

from .metrics import ERROR_METRICS, KL_FORWARD, KL_REVERSE
from .stats import mean_interval

KEY_COLUMNS = ["spec", "method", "family"]
INTERVAL_METRICS = [*ERROR_METRICS, KL_FORWARD, KL_REVERSE, "dropped_mass"]


def per_config(ok: pd.DataFrame, interval: str = "auto") -> pd.DataFrame:
    """Mean of every numeric column per (spec, method, family); NaNs are skipped.

    A metric that is NaN for every dump of a spec stays NaN.
    """
    if ok.empty:
        return ok.assign(n_dumps=pd.Series(dtype=int))
    numeric = [c for c in ok.select_dtypes("number").columns if c not in KEY_COLUMNS]
    grouped = ok.groupby(KEY_COLUMNS, sort=True, dropna=False)
    table = grouped[numeric].mean()
    table["n_dumps"] = grouped.size()
    table = table.reset_index()
    spans = [c for c in INTERVAL_METRICS if c in numeric]
    if spans:
        bounds = mean_interval(ok, KEY_COLUMNS, spans, interval)
        keep = KEY_COLUMNS + [f"{c}_{end}" for c in spans for end in ("lo", "hi")]
        table = table.merge(bounds[keep], on=KEY_COLUMNS, how="left")
    table.insert(0, "status", "ok")
    return table
