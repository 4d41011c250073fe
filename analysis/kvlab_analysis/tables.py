"""Best configuration per bit budget.

For each budget B (bits/element) and each error metric, the best row is the one
with the lowest error among rows with ``bits_per_element <= B``.  Ties on the
error are broken by fewer bits/element, then higher compression ratio, then
spec name, so the result is deterministic.  Rows that failed or whose metric
is NaN are never chosen.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .metrics import BITS, RATIO, short_label

TABLE_COLUMNS = ["budget", "metric", "spec", "method", "family", BITS, RATIO, "error"]


def _candidates(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    mask = frame[metric].notna() & frame[BITS].notna()
    if "status" in frame.columns:
        mask &= frame["status"].astype(str).str.strip().str.lower() == "ok"
    return frame[mask]


def best_per_budget(frame: pd.DataFrame, budgets: list[float],
                    metrics: list[str]) -> pd.DataFrame:
    """Long table with one row per (budget, metric).

    When no configuration fits a budget the row has an empty spec and NaN
    numbers, so every (budget, metric) pair is always present.
    """
    rows = []
    for metric in metrics:
        candidates = _candidates(frame, metric)
        for budget in budgets:
            fitting = candidates[candidates[BITS] <= budget]
            if fitting.empty:
                rows.append({"budget": budget, "metric": metric, "spec": "", "method": "",
                             "family": "", BITS: math.nan, RATIO: math.nan, "error": math.nan})
                continue
            ordered = fitting.assign(_neg_ratio=-fitting[RATIO]).sort_values(
                [metric, BITS, "_neg_ratio", "spec"], kind="mergesort")
            best = ordered.iloc[0]
            rows.append({"budget": budget, "metric": metric, "spec": best["spec"],
                         "method": best["method"], "family": best["family"],
                         BITS: best[BITS], RATIO: best[RATIO], "error": best[metric]})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _fmt(value: float, spec: str = "{:.4g}") -> str:
    return "—" if pd.isna(value) else spec.format(value)


def to_markdown(table: pd.DataFrame) -> str:
    """One Markdown section per metric, one table row per budget."""
    lines = ["# Best configuration per bit budget", "",
             "Lowest error among configurations with bits/element ≤ budget.", ""]
    for metric, part in table.groupby("metric", sort=False):
        lines += [f"## {short_label(metric)} (`{metric}`)", "",
                  "| budget (bits/elem) | best | family | bits/elem | ratio (×) | error |",
                  "|---:|---|---|---:|---:|---:|"]
        for _, row in part.iterrows():
            spec = f"`{row['spec']}`" if row["spec"] else "(none fits)"
            if row["spec"] and row.get("label"):
                spec = f"{row['label']} ({spec})" if row["label"] != row["spec"] else spec
            lines.append(f"| {_fmt(row['budget'], '{:g}')} | {spec} | {row['family']} | "
                         f"{_fmt(row[BITS], '{:.3f}')} | {_fmt(row[RATIO], '{:.2f}')} | "
                         f"{_fmt(row['error'])} |")
        lines.append("")
    return "\n".join(lines)


def write_budget_tables(table: pd.DataFrame, out_dir: Path,
                        stem: str = "best_per_budget") -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}.csv"
    md_path = out_dir / f"{stem}.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(to_markdown(table), encoding="utf-8")
    return [csv_path, md_path]
