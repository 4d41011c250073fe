"""A short Markdown report of a results folder: jobs, failures, Pareto fronts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .load import Results
from .metrics import BITS, RATIO, short_label


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failed_jobs_markdown(failed: pd.DataFrame) -> list[str]:
    if failed.empty:
        return ["No failed jobs.", ""]
    lines = ["| job | spec | dump | error |", "|---|---|---|---|"]
    for _, row in failed.iterrows():
        lines.append(f"| {row['job_id']} | `{row['spec']}` | {row['dump']} | "
                     f"{_one_line(row['error']) or '(no message)'} |")
    return lines + [""]


def pareto_markdown(fronts: pd.DataFrame) -> list[str]:
    lines = []
    for metric, part in fronts[fronts["scope"] == "overall"].groupby("metric", sort=False):
        lines += [f"### {short_label(metric)} (`{metric}`)", "",
                  "| spec | family | ratio (×) | bits/elem | error |", "|---|---|---:|---:|---:|"]
        for _, row in part.iterrows():
            lines.append(f"| `{row['spec']}` | {row['family']} | {row[RATIO]:.2f} | "
                         f"{row[BITS]:.3f} | {row['error']:.4g} |")
        lines.append("")
    return lines or ["(no Pareto front: no successful configuration with metrics)", ""]


def write_report(results: Results, fronts: pd.DataFrame, budget_md: str,
                 files: list[Path], out_dir: Path) -> Path:
    """Write ``report.md`` into ``out_dir`` and return its path."""
    summary = results.summary
    lines = [
        f"# kvlab results: `{results.folder}`", "",
        f"- plan: `{results.config_name or '(no config.resolved.yaml)'}`",
        f"- jobs: {len(summary)} ({len(results.ok)} ok, {len(results.failed)} failed)",
        f"- configurations (specs): {results.ok['spec'].nunique()}, "
        f"dumps: {summary['dump'].nunique()}",
        f"- methods: {', '.join(sorted(results.ok['method'].unique())) or '(none)'}", "",
        "## Failed jobs", "",
        *failed_jobs_markdown(results.failed),
        "## Overall Pareto fronts (compression ratio ↑, error ↓; mean over dumps)", "",
        "Per-family fronts are in `pareto_front.csv`.", "",
        *pareto_markdown(fronts),
        budget_md.replace("# Best", "## Best", 1).replace("\n## ", "\n### "), "",
        "## Files", "",
        *[f"- `{path.name}`" for path in files], "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
