#!/usr/bin/python3
"""Make every plot and table of a kvlab results folder.

Usage:
    /usr/bin/python3 analysis/plot_results.py RESULTS_DIR [--out DIR]
        [--budgets 2.5,3.5,4.5,8.5,16] [--max-heatmaps N] [--max-legend N]

Writes PNG (dpi 150) + PDF figures, CSV + Markdown tables and report.md into
--out (default RESULTS_DIR/figures) and prints the list of files written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvlab_analysis import plots  # noqa: E402
from kvlab_analysis.configs import per_config  # noqa: E402
from kvlab_analysis.load import Results, ResultsError, load_results  # noqa: E402
from kvlab_analysis.metrics import ERROR_METRICS  # noqa: E402
from kvlab_analysis.pareto import pareto_table  # noqa: E402
from kvlab_analysis.report import write_report  # noqa: E402
from kvlab_analysis.tables import best_per_budget, to_markdown, write_budget_tables  # noqa: E402

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="kvlab results folder (has summary.csv)")
    parser.add_argument("--out", type=Path, help="output folder (default RESULTS/figures)")
    parser.add_argument("--budgets", type=parse_budgets, default=DEFAULT_BUDGETS,
                        help="bits/element budgets, comma separated (default %(default)s)")
    parser.add_argument("--max-heatmaps", type=int, default=6,
                        help="at most this many per-layer heatmaps (best/worst jobs)")
    parser.add_argument("--max-legend", type=int, default=12,
                        help="specs labelled in the error-accumulation plot")
    return parser.parse_args(argv)


def make_outputs(results: Results, out: Path, budgets: list[float],
                 max_heatmaps: int, max_legend: int) -> list[Path]:
    """Write every figure and table; return the paths written (report last)."""
    out.mkdir(parents=True, exist_ok=True)
    configs = per_config(results.ok)
    metrics = list(ERROR_METRICS)
    files: list[Path] = []

    fronts = pareto_table(configs, metrics)
    fronts.to_csv(out / "pareto_front.csv", index=False)
    files.append(out / "pareto_front.csv")
    budget_table = best_per_budget(configs, budgets, metrics)
    files += write_budget_tables(budget_table, out)

    if configs.empty:
        print("warning: no successful jobs; figures skipped", file=sys.stderr)
    else:
        files += plots.plot_pareto(configs, out)
    if results.steps is not None and not results.steps.empty:
        files += plots.plot_error_accumulation(results.steps, out, max_labelled=max_legend)
    else:
        print("warning: no steps.csv rows; error-accumulation plot skipped", file=sys.stderr)
    if results.layers is not None and not results.layers.empty:
        chosen = plots.select_heatmap_jobs(results.ok, results.layers, max_heatmaps)
        jobs = results.ok.set_index("job_id", drop=False)
        for job_id in chosen:
            files += plots.plot_layer_heatmap(results.layers, jobs.loc[job_id], out)
    else:
        print("warning: no layers.csv rows; heatmaps skipped", file=sys.stderr)

    decode_csv = results.folder / "decode_steps.csv"
    if decode_csv.exists():  # the sweep had a model in the loop
        import plot_decode  # noqa: E402  (sibling script)
        prefix = out / "model_in_the_loop"
        if plot_decode.main([str(decode_csv), "--out", str(prefix)]) == 0:
            files += [prefix.with_suffix(".png"), prefix.with_suffix(".pdf")]

    files.append(write_report(results, fronts, to_markdown(budget_table), files, out))
    return files


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = load_results(args.results)
    except ResultsError as exc:
        print(f"plot_results: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.results / "figures"
    files = make_outputs(results, out, args.budgets, args.max_heatmaps, args.max_legend)
    if not results.failed.empty:
        print(f"note: {len(results.failed)} failed job(s) listed in {out / 'report.md'}",
              file=sys.stderr)
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
