"""The report of a results folder as a list of blocks, and its Markdown form.

The same blocks render to ``report.md`` (here) and to the self-contained
``report.html`` (:mod:`.report_html`), so both always list the same figures
and tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .encoding import Encoding
from .figure import Figure
from .labels import ALIAS_MEANINGS
from .metrics import BITS, ERROR_METRICS, RATIO, short_label


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    code_columns: set[int] = field(default_factory=set)  # shown as code (specs, file names)
    right: set[int] = field(default_factory=set)  # numeric columns


@dataclass
class FigureBlock:
    figure: Figure


@dataclass
class Bullets:
    items: list[str]


def _num(value, spec: str = "{:.4g}") -> str:
    return "—" if value is None or pd.isna(value) else spec.format(value)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_facts(results) -> list[str]:
    config = results.config or {}
    replay = config.get("replay") or {}
    dumps = sorted(results.summary["dump"].unique())
    facts = [f"plan: {config.get('name', results.config_name or '(no config.resolved.yaml)')}"
             + (f" ({config['source']})" if config.get("source") else ""),
             f"jobs: {len(results.summary)} ({len(results.ok)} ok, {len(results.failed)} failed)",
             f"dumps: {', '.join(Path(d).name for d in dumps)}"]
    if replay:
        shown = {k: ("all" if v in ([], -1, None) else v) for k, v in replay.items()}
        facts.append("replay: " + ", ".join(f"{k} = {v}" for k, v in shown.items()))
    if config.get("kvlab_version"):
        facts.append(f"kvlab {config['kvlab_version']}, git {config.get('git_revision', '?')}")
    return facts


def failed_table(failed: pd.DataFrame, enc: Optional[Encoding]) -> Table:
    rows = [[str(r["job_id"]), enc.label(r["spec"]) if enc and r["spec"] in enc.labeller.labels
             else str(r["spec"]), Path(str(r["dump"])).name,
             _one_line(r["error"]) or "(no message)"] for _, r in failed.iterrows()]
    return Table(["job", "configuration", "dump", "error"], rows, code_columns={0})


def budget_tables(table: pd.DataFrame, enc: Encoding) -> list:
    blocks = []
    for metric, part in table.groupby("metric", sort=False):
        rows = [[_num(r["budget"], "{:g}"), enc.label(r["spec"]) if r["spec"] else "(none fits)",
                 r["family"], _num(r[BITS], "{:.3f}"), _num(r[RATIO], "{:.2f}"),
                 _num(r["error"])] for _, r in part.iterrows()]
        blocks += [Heading(f"{short_label(metric)} (`{metric}`)", 3),
                   Table(["budget (bits/elem)", "best", "family", "bits/elem", "ratio (×)",
                          "error"], rows, right={0, 3, 4, 5})]
    return blocks


def front_tables(fronts: pd.DataFrame, enc: Encoding) -> list:
    blocks = []
    overall = fronts[fronts["scope"] == "overall"]
    for metric, part in overall.groupby("metric", sort=False):
        rows = [[enc.label(r["spec"]), r["family"], _num(r[RATIO], "{:.2f}"),
                 _num(r[BITS], "{:.3f}"), _num(r["error"])] for _, r in part.iterrows()]
        blocks += [Heading(f"{short_label(metric)} (`{metric}`)", 3),
                   Table(["configuration", "family", "ratio (×)", "bits/elem", "error"], rows,
                         right={2, 3, 4})]
    return blocks or [Paragraph("(no Pareto front: no successful configuration with metrics)")]


def label_table(configs: pd.DataFrame, enc: Encoding) -> list:
    rows = [[enc.label(s), s] for s in sorted(configs["spec"], key=enc.label)]
    blocks = [Table(["label", "canonical spec"], rows, code_columns={1})]
    used = sorted(enc.labeller.aliases_used)
    if used:
        blocks.append(Paragraph("Abbreviations: " + "; ".join(
            f"{a} = {ALIAS_MEANINGS[a]}" for a in used) + "."))
    return blocks


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (not one inside a number)."""
    for i, char in enumerate(text):
        if char == "." and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1]
    return text


def figure_blocks(figures: list[Figure]) -> list:
    return [FigureBlock(f) for f in figures]


def build_report(title: str, summary: str, facts: list[str], figures: list[Figure],
                 sections: list[tuple[str, list]], files: list[Path]) -> list:
    """Title, summary, facts, figures (each with what it shows), extra sections, files."""
    blocks: list = [Heading(title, 1), Paragraph(summary), Bullets(facts),
                    Heading("Figures"),
                    Bullets([f"`{f.png.name}` — {first_sentence(f.caption)}"
                             for f in figures if f.png]),
                    *figure_blocks(figures)]
    for heading, content in sections:
        blocks += [Heading(heading), *content]
    blocks += [Heading("Files"), Bullets([f"`{p.name}`" for p in files])]
    return blocks


def _md_table(table: Table) -> list[str]:
    def cell(i: int, text: str) -> str:
        text = str(text).replace("|", "\\|")
        return f"`{text}`" if i in table.code_columns and text else text
    lines = ["| " + " | ".join(table.header) + " |",
             "|" + "|".join("---:" if i in table.right else "---"
                            for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(cell(i, c) for i, c in enumerate(row)) + " |"
              for row in table.rows]
    return lines + [""]


def to_markdown(blocks: list) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines += _md_table(block)
        elif isinstance(block, FigureBlock):
            figure = block.figure
            name = figure.png.name if figure.png else figure.stem
            lines += [f"### {figure.title}", "", f"![{figure.title}]({name})", "",
                      f"`{name}`: {figure.caption}", ""]
    return "\n".join(lines)


def write_markdown(blocks: list, out_dir: Path) -> Path:
    path = out_dir / "report.md"
    path.write_text(to_markdown(blocks), encoding="utf-8")
    return path


__all__ = ["Heading", "Paragraph", "Table", "FigureBlock", "Bullets", "build_report",
           "budget_tables", "front_tables", "label_table", "failed_table", "run_facts",
           "to_markdown", "write_markdown", "ERROR_METRICS"]
