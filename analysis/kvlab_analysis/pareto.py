"""Pareto fronts in (compression ratio: higher is better, error: lower is better).

All functions are pure: they take DataFrames with one row per configuration
and return new DataFrames / Series without modifying their input.  Rows whose
``status`` (if that column exists) is not ``ok``, or whose ratio or error is
NaN, never belong to a front.  Exact ties (same ratio and same error) do not
dominate each other, so all tied rows are kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import RATIO


def _eligible(frame: pd.DataFrame, error: str, ratio: str) -> pd.Series:
    mask = frame[ratio].notna() & frame[error].notna()
    if "status" in frame.columns:
        mask &= frame["status"].astype(str).str.strip().str.lower() == "ok"
    return mask


def pareto_mask(frame: pd.DataFrame, error: str, ratio: str = RATIO) -> pd.Series:
    """Boolean Series (aligned to ``frame``): True for non-dominated rows.

    Row *a* dominates row *b* when ratio_a >= ratio_b and error_a <= error_b
    with at least one strict inequality.
    """
    eligible = _eligible(frame, error, ratio)
    result = pd.Series(False, index=frame.index)
    if not eligible.any():
        return result
    x = frame.loc[eligible, ratio].to_numpy(dtype=float)
    y = frame.loc[eligible, error].to_numpy(dtype=float)
    # dominated[i] = any j with x_j >= x_i, y_j <= y_i and (x_j > x_i or y_j < y_i)
    better_or_equal = (x[None, :] >= x[:, None]) & (y[None, :] <= y[:, None])
    strictly = (x[None, :] > x[:, None]) | (y[None, :] < y[:, None])
    dominated = np.any(better_or_equal & strictly, axis=1)
    result.loc[eligible] = ~dominated
    return result


def pareto_front(frame: pd.DataFrame, error: str, ratio: str = RATIO) -> pd.DataFrame:
    """The non-dominated rows, sorted by increasing compression ratio."""
    front = frame[pareto_mask(frame, error, ratio)]
    return front.sort_values([ratio, error], kind="mergesort")


def pareto_fronts_by(frame: pd.DataFrame, error: str, group: str = "family",
                     ratio: str = RATIO) -> dict[str, pd.DataFrame]:
    """One front per value of ``group`` (e.g. per method family)."""
    return {str(name): pareto_front(part, error, ratio)
            for name, part in frame.groupby(group, sort=True)}


def pareto_table(frame: pd.DataFrame, errors: list[str], group: str = "family",
                 ratio: str = RATIO) -> pd.DataFrame:
    """Long table of front members: one row per (error metric, scope, config).

    ``scope`` is ``overall`` for the front over all rows, otherwise the group
    value (family) whose own front the row belongs to.
    """
    columns = ["metric", "scope", "spec", "method", "family", ratio, "bits_per_element", "error"]
    parts = []
    for error in errors:
        scopes = {"overall": pareto_front(frame, error, ratio)}
        scopes.update(pareto_fronts_by(frame, error, group, ratio))
        for scope, front in scopes.items():
            if front.empty:
                continue
            part = pd.DataFrame({
                "metric": error,
                "scope": scope,
                "spec": front["spec"].to_numpy(),
                "method": front["method"].to_numpy(),
                "family": front["family"].to_numpy(),
                ratio: front[ratio].to_numpy(),
                "bits_per_element": front["bits_per_element"].to_numpy(),
                "error": front[error].to_numpy(),
            })
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]
