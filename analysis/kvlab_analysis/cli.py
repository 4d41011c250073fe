"""The command: every figure, table and report of a kvlab results folder.

    /usr/bin/python3 analysis/plot_results.py RESULTS_DIR [options]
    /usr/bin/python3 analysis/plot_results.py DECODE_CSV_OR_DIR... [options]

The first form reads a results folder (``kvlab sweep`` / ``kvlab run --csv``);
the second reads ``kvlab decode --csv`` files (or folders of them) and draws
the model-in-the-loop figure.  Both write PNG + PDF figures, CSV + Markdown
tables, ``report.md`` and the self-contained ``report.html`` into ``--out``,
print the files written and end with a one-paragraph summary of the results.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import pandas as pd

from . import plot_ablation, plot_decode, plot_heatmap, plot_pareto, plot_steps, style
from . import report as rep
from .catalog import Catalog, build_catalog, find_kvlab
from .configs import per_config
from .encoding import Encoding, make_encoding
from .figure import Figure
from .labels import nested_methods
from .load import (DECODE_FILE, Results, ResultsError, SUMMARY_FILE, decode_csv_files,
                   load_decode_csvs, load_results)
from .metrics import ERROR_METRICS
from .pareto import pareto_table
from .report_html import write_html
from .stats import INTERVALS
from .summary import summarize, summarize_decode, wrap
from .tables import best_per_budget, write_budget_tables

DEFAULT_BUDGETS = [2.5, 3.5, 4.5, 8.5, 16.0]


def parse_budgets(text: str) -> list[float]:
    try:
        budgets = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid budget list {text!r} (want e.g. 2.5,3.5)")
    if not budgets or any(b <= 0 for b in budgets):
        raise argparse.ArgumentTypeError(f"budgets must be positive numbers, got {text!r}")
    return sorted(budgets)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="plot_results.py",
        description="Figures, tables, report.md and report.html of a kvlab results folder "
                    "(or of kvlab decode CSVs).")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="RESULTS",
                        help="a results folder (has summary.csv), or kvlab decode CSVs / "
                             "folders of them")
    parser.add_argument("--out", type=Path,
                        help="output folder (default: RESULTS/figures)")
    parser.add_argument("--budgets", type=parse_budgets, default=DEFAULT_BUDGETS,
                        help="bits/element budgets for the best-per-budget tables, comma "
                             "separated (default 2.5,3.5,4.5,8.5,16)")
    parser.add_argument("--heatmap", nargs="+", metavar="SPEC", default=None,
                        help="configurations for the per-layer heatmaps: canonical specs, "
                             "labels or preset names (default: the best of each family)")
    parser.add_argument("--no-heatmaps", action="store_true", help="skip the per-layer heatmaps")
    parser.add_argument("--interval", choices=INTERVALS, default="auto",
                        help="bars and bands over dumps: ci95 (95%% t-interval of the mean), "
                             "range (min-max), auto (ci95 with 3+ runs, else range; default)")
    parser.add_argument("--window", type=int, default=plot_decode.DEFAULT_WINDOW,
                        help="running-mean window of the model-in-the-loop KL and hidden error "
                             "(default %(default)s)")
    parser.add_argument("--no-pdf", action="store_true",
                        help="write PNG figures only (faster; PDF is for papers)")
    parser.add_argument("--kvlab", metavar="PATH",
                        help="kvlab binary used to resolve preset names and defaults for labels "
                             "(default: $KVLAB_BIN, build/kvlab, then PATH)")
    return parser.parse_args(argv)


def make_catalog(specs, kvlab: Optional[str]) -> Catalog:
    catalog = build_catalog(nested_methods(specs), find_kvlab(kvlab))
    if not catalog.presets:
        print(f"note: labels without preset names ({catalog.source})", file=sys.stderr)
    return catalog


def _with_labels(frame: pd.DataFrame, enc: Encoding, after: str = "spec") -> pd.DataFrame:
    frame = frame.copy()
    labels = frame["spec"].map(lambda s: enc.label(s) if s else "")
    frame.insert(frame.columns.get_loc(after) + 1, "label", labels)
    return frame


def _write_labels(configs: pd.DataFrame, enc: Encoding, out: Path) -> Path:
    path = out / "labels.csv"
    table = pd.DataFrame({"label": configs["spec"].map(enc.label), "spec": configs["spec"],
                          "method": configs["method"], "family": configs["family"]})
    table.sort_values("label").to_csv(path, index=False)
    return path


def _figures(results: Results, configs: pd.DataFrame, enc: Encoding, args,
             out: Path) -> list[Figure]:
    figures: list[Figure] = []
    if configs.empty:
        print("warning: no successful jobs; figures skipped", file=sys.stderr)
        return figures
    figures.append(plot_pareto.plot_pareto(configs, enc, out, args.interval))
    for series in plot_ablation.ablation_series(enc):
        figures.append(plot_ablation.plot_ablation(configs, enc, series, out, args.interval))
    if results.steps is not None and not results.steps.empty:
        figure = plot_steps.plot_error_accumulation(results.steps, enc, out, args.interval)
        figures += [figure] if figure else []
    else:
        print("warning: no steps.csv rows; error-over-decoding plot skipped", file=sys.stderr)
    if results.layers is not None and not results.layers.empty and not args.no_heatmaps:
        specs = list(configs["spec"])
        chosen = (plot_heatmap.resolve_choice(args.heatmap, specs, enc) if args.heatmap
                  else plot_heatmap.default_choice(configs))
        figures += plot_heatmap.plot_heatmaps(results.layers, chosen, enc, out)
    if results.decode is not None and not results.decode.empty:
        figure = plot_decode.plot_decode(results.decode, enc, out, args.interval, args.window)
        figures += [figure] if figure else []
    return figures


def results_outputs(results: Results, args, out: Path) -> tuple[list[Path], str]:
    """Write everything for a results folder; return (files, summary paragraph)."""
    out.mkdir(parents=True, exist_ok=True)
    ok = results.ok
    catalog = make_catalog(ok["spec"].unique(), args.kvlab)
    families = ok.drop_duplicates("spec").set_index("spec")["family"].to_dict()
    enc = make_encoding(families, catalog)
    configs = per_config(ok, args.interval)
    metrics = list(ERROR_METRICS)
    fronts = _with_labels(pareto_table(configs, metrics), enc)
    fronts.to_csv(out / "pareto_front.csv", index=False)
    budget = _with_labels(best_per_budget(configs, args.budgets, metrics), enc)
    files = [out / "pareto_front.csv", *write_budget_tables(budget, out)]
    if not configs.empty:
        files.append(_write_labels(configs, enc, out))
    figures = _figures(results, configs, enc, args, out)
    files += [p for f in figures for p in f.paths]
    summary = summarize(results, configs, enc, budget, results.steps, results.decode)
    sections = []
    if not results.failed.empty:
        sections.append(("Failed jobs", [rep.failed_table(results.failed, enc)]))
    sections += [
        ("Best configuration per bit budget",
         [rep.Paragraph("Lowest error among configurations with bits/element ≤ budget "
                        "(mean over dumps).")] + rep.budget_tables(budget, enc)),
        ("Pareto fronts (compression ratio ↑, error ↓)",
         [rep.Paragraph("Per-family fronts are in `pareto_front.csv`.")]
         + rep.front_tables(fronts, enc)),
        ("Labels", [rep.Paragraph("Figures and tables name configurations by a short label: "
                                  "the preset name when the spec is a preset, else the method "
                                  "and the parameters that vary. The full spec is in the CSV "
                                  "files.")] + rep.label_table(configs, enc)),
    ]
    name = (results.config or {}).get("name") or results.folder.name
    files_listed = files + [out / "report.md", out / "report.html"]
    blocks = rep.build_report(f"kvlab results: {name}", summary, rep.run_facts(results),
                              figures, sections, files_listed)
    files += [rep.write_markdown(blocks, out), write_html(blocks, out)]
    return files, summary


def decode_outputs(inputs: list[Path], args, out: Path, stem: str = "model_in_the_loop",
                   with_report: bool = True) -> tuple[list[Path], str]:
    """Write the model-in-the-loop figure (and report) for kvlab decode CSVs."""
    decode = load_decode_csvs(decode_csv_files(inputs))
    catalog = make_catalog(decode["spec"].unique(), args.kvlab)
    enc = make_encoding({s: "" for s in decode["spec"].unique()}, catalog)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_decode.plot_decode(decode, enc, out, args.interval, args.window, stem=stem)
    summary = summarize_decode(decode, enc)
    files = list(figure.paths) if figure else []
    if with_report:
        facts = [f"inputs: {', '.join(str(p) for p in inputs)}",
                 f"runs: {decode.groupby(['job_id', 'mode']).ngroups}"]
        blocks = rep.build_report("kvlab model in the loop", summary, facts,
                                  [figure] if figure else [], [],
                                  files + [out / "report.md", out / "report.html"])
        files += [rep.write_markdown(blocks, out), write_html(blocks, out)]
    return files, summary


def _is_results_folder(path: Path) -> bool:
    return path.is_dir() and (path / SUMMARY_FILE).is_file()


def run(args) -> tuple[list[Path], str]:
    first = args.inputs[0]
    if len(args.inputs) == 1 and (_is_results_folder(first) or not first.exists()):
        results = load_results(first)
        return results_outputs(results, args, args.out or first / "figures")
    if len(args.inputs) == 1 and first.is_dir() and not decode_csv_files([first]):
        raise ResultsError(f"{first / SUMMARY_FILE}: file not found (not a kvlab results folder, "
                           f"and no kvlab decode CSVs in it)")
    out = args.out or ((first if first.is_dir() else first.parent) / "figures")
    return decode_outputs(args.inputs, args, out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.window < 1:
        print("plot_results: error: --window must be at least 1", file=sys.stderr)
        return 2
    style.FORMATS[:] = ["png"] if args.no_pdf else ["png", "pdf"]
    try:
        files, summary = run(args)
    except (ResultsError, plot_heatmap.HeatmapChoiceError) as exc:
        print(f"plot_results: error: {exc}", file=sys.stderr)
        return 2
    for path in files:
        print(path)
    print()
    print(wrap(summary))
    return 0


__all__ = ["main", "run", "decode_outputs", "results_outputs", "DECODE_FILE"]
