"""Collapse per-job rows into one row per configuration (``spec``).

A sweep may run every configuration on several dumps; the Pareto plot and the
budget tables compare configurations, so numeric metrics are averaged over the
dumps of each spec (``n_dumps`` counts them).
"""

from __future__ import annotations

import pandas as pd

KEY_COLUMNS = ["spec", "method", "family"]


def per_config(ok: pd.DataFrame) -> pd.DataFrame:
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
    table.insert(0, "status", "ok")
    return table
