#!/usr/bin/python3
"""Tests of the kvlab analysis package and the analysis/plot_results.py command.

Run from the repository root:  /usr/bin/python3 tests/python/test_analysis.py
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "analysis"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from kvlab_analysis.configs import per_config  # noqa: E402
from kvlab_analysis.load import ResultsError, load_results  # noqa: E402
from kvlab_analysis.pareto import (pareto_front, pareto_fronts_by, pareto_mask,  # noqa: E402
                                   pareto_table)
from kvlab_analysis.tables import best_per_budget, to_markdown, write_budget_tables  # noqa: E402

SCRIPT = REPO / "analysis" / "plot_results.py"
FIXTURE = REPO / "tests" / "python" / "fixtures" / "results_small"
NAN = math.nan


def configs(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (spec, family, status, compression_ratio, bits_per_element, err)."""
    frame = pd.DataFrame(rows, columns=["spec", "family", "status", "compression_ratio",
                                        "bits_per_element", "err"])
    frame["method"] = frame["spec"].str.split(":").str[0]
    return frame


class ParetoTest(unittest.TestCase):
    def setUp(self):
        self.frame = configs([
            ("fp16", "baseline", "ok", 1.0, 16.0, 0.0),
            ("b:2", "quant", "ok", 2.0, 8.0, 0.1),
            ("c:2", "quant", "ok", 2.0, 8.0, 0.2),        # same ratio, worse error
            ("d:4", "quant", "ok", 4.0, 4.0, 0.3),
            ("e:3", "drop", "ok", 3.0, 5.3, 0.5),         # dominated by d:4
            ("f:3", "drop", "ok", 1.5, 10.0, 0.1),        # same error as b, less ratio
            ("g:9", "quant", "failed", 10.0, 1.6, 0.0),   # failed: ignored
            ("h:8", "quant", "ok", 8.0, 2.0, NAN),        # NaN error: ignored
        ])

    def front_specs(self, frame, error="err"):
        return list(pareto_front(frame, error)["spec"])

    def test_known_front_sorted_by_ratio(self):
        self.assertEqual(self.front_specs(self.frame), ["fp16", "b:2", "d:4"])

    def test_failed_and_nan_rows_neither_join_nor_dominate(self):
        mask = pareto_mask(self.frame, "err")
        self.assertFalse(mask[self.frame["spec"] == "g:9"].any())
        self.assertFalse(mask[self.frame["spec"] == "h:8"].any())
        self.assertTrue(mask[self.frame["spec"] == "d:4"].all())

    def test_exact_ties_are_all_kept(self):
        frame = configs([("a:1", "quant", "ok", 2.0, 8.0, 0.1),
                         ("a:2", "quant", "ok", 2.0, 8.0, 0.1),
                         ("a:3", "quant", "ok", 1.0, 16.0, 0.1)])
        self.assertEqual(sorted(self.front_specs(frame)), ["a:1", "a:2"])

    def test_mask_aligned_to_index_and_input_untouched(self):
        frame = self.frame.set_index(pd.Index(range(10, 18)))
        before = frame.copy()
        mask = pareto_mask(frame, "err")
        self.assertEqual(list(mask.index), list(frame.index))
        pd.testing.assert_frame_equal(frame, before)

    def test_all_nan_gives_empty_front(self):
        frame = self.frame.assign(err=NAN)
        self.assertTrue(pareto_front(frame, "err").empty)

    def test_fronts_per_family(self):
        fronts = pareto_fronts_by(self.frame, "err")
        self.assertEqual(set(fronts), {"baseline", "quant", "drop"})
        self.assertEqual(list(fronts["quant"]["spec"]), ["b:2", "d:4"])
        # within its own family, e:3 is no longer dominated by d:4
        self.assertEqual(list(fronts["drop"]["spec"]), ["f:3", "e:3"])

    def test_pareto_table_scopes(self):
        table = pareto_table(self.frame, ["err"])
        overall = table[table["scope"] == "overall"]
        self.assertEqual(list(overall["spec"]), ["fp16", "b:2", "d:4"])
        self.assertEqual(set(table["scope"]), {"overall", "baseline", "quant", "drop"})


class BudgetTableTest(unittest.TestCase):
    def setUp(self):
        self.frame = configs([
            ("fp16", "baseline", "ok", 1.0, 16.0, 0.0),
            ("u:8", "quant", "ok", 1.9, 8.5, 0.01),
            ("u:4", "quant", "ok", 3.6, 4.5, 0.08),
            ("k:4", "quant", "ok", 3.2, 5.0, 0.03),
            ("k:2", "quant", "ok", 5.1, 3.1, 0.12),
            ("q:3", "quant", "ok", 4.7, 3.4, 0.12),      # tie with k:2, but more bits
            ("g:2", "gear", "failed", 7.0, 2.2, 0.001),  # failed: never chosen
            ("x:2", "quant", "ok", 7.5, 2.1, NAN),       # NaN error: never chosen
        ])

    def best(self, budgets):
        table = best_per_budget(self.frame, budgets, ["err"])
        return dict(zip(table["budget"], table["spec"]))

    def test_known_best_per_budget(self):
        self.assertEqual(self.best([2.5, 3.5, 4.5, 5.0, 8.5, 16.0]),
                         {2.5: "", 3.5: "k:2", 4.5: "u:4", 5.0: "k:4", 8.5: "u:8", 16.0: "fp16"})

    def test_budget_is_inclusive(self):
        self.assertEqual(self.best([4.5])[4.5], "u:4")

    def test_tie_broken_by_fewer_bits_then_ratio_then_spec(self):
        self.assertEqual(self.best([3.5])[3.5], "k:2")
        tied = configs([("b:1", "quant", "ok", 4.0, 3.0, 0.1),
                        ("a:1", "quant", "ok", 4.0, 3.0, 0.1),
                        ("c:1", "quant", "ok", 4.5, 3.0, 0.1)])
        self.assertEqual(best_per_budget(tied, [3.0], ["err"])["spec"].iloc[0], "c:1")
        self.assertEqual(best_per_budget(tied.iloc[:2], [3.0], ["err"])["spec"].iloc[0], "a:1")

    def test_empty_budget_row_and_markdown(self):
        table = best_per_budget(self.frame, [2.5, 16.0], ["err"])
        self.assertEqual(len(table), 2)
        self.assertTrue(math.isnan(table["error"].iloc[0]))
        markdown = to_markdown(table)
        self.assertIn("(none fits)", markdown)
        self.assertIn("`fp16`", markdown)

    def test_one_row_per_budget_and_metric(self):
        frame = self.frame.assign(err2=self.frame["bits_per_element"])
        table = best_per_budget(frame, [3.5, 16.0], ["err", "err2"])
        self.assertEqual(len(table), 4)
        # NaN filtering is per metric: x:2 has no "err" but is the best "err2"
        self.assertEqual(list(table[table["metric"] == "err"]["spec"]), ["k:2", "fp16"])
        self.assertEqual(list(table[table["metric"] == "err2"]["spec"]), ["x:2", "x:2"])

    def test_write_tables(self):
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_budget_tables(best_per_budget(self.frame, [4.5], ["err"]), Path(tmp))
            self.assertEqual([p.name for p in paths], ["best_per_budget.csv", "best_per_budget.md"])
            self.assertEqual(pd.read_csv(paths[0])["spec"].tolist(), ["u:4"])


class LoadTest(unittest.TestCase):
    def test_fixture_splits_ok_and_failed(self):
        results = load_results(FIXTURE)
        self.assertEqual(len(results.ok), 7)
        self.assertEqual(list(results.failed["job_id"]), ["j007"])
        self.assertNotIn("j007", set(results.layers["job_id"]))
        self.assertNotIn("j007", set(results.steps["job_id"]))
        qjl = results.ok[results.ok["method"] == "qjl"]
        self.assertTrue(qjl["k_rel_err_global"].isna().all())  # keys not reconstructible
        self.assertEqual(results.config_name, "config.resolved.yaml")

    def test_missing_column_names_file_and_column(self):
        with tempfile.TemporaryDirectory() as tmp:
            summary = pd.read_csv(FIXTURE / "summary.csv").drop(columns=["attn_out_rel"])
            summary.to_csv(Path(tmp) / "summary.csv", index=False)
            with self.assertRaises(ResultsError) as caught:
                load_results(tmp)
            self.assertIn("summary.csv", str(caught.exception))
            self.assertIn("attn_out_rel", str(caught.exception))

    def test_missing_folder_and_summary(self):
        with self.assertRaisesRegex(ResultsError, "does not exist"):
            load_results("/nonexistent/kvlab/results")
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(ResultsError, "summary.csv"):
                load_results(tmp)

    def test_per_config_averages_over_dumps(self):
        ok = load_results(FIXTURE).ok
        other = ok.assign(dump="other.kvd", job_id=ok["job_id"] + "b",
                          attn_out_rel=ok["attn_out_rel"] * 3)
        table = per_config(pd.concat([ok, other], ignore_index=True)).set_index("spec")
        self.assertEqual(len(table), 7)
        self.assertTrue((table["n_dumps"] == 2).all())
        expected = ok.set_index("spec")["attn_out_rel"] * 2
        pd.testing.assert_series_equal(table["attn_out_rel"], expected.loc[table.index],
                                       check_names=False)


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


class EndToEndTest(unittest.TestCase):
    FIGURES = ["pareto_error_vs_ratio", "error_accumulation"] + [
        f"heatmap_j00{i}" for i in range(1, 7)]  # every ok non-baseline job
    TABLES = ["pareto_front.csv", "best_per_budget.csv", "best_per_budget.md", "report.md"]

    def test_all_outputs_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "figs"
            proc = run_command(str(FIXTURE), "--out", str(out), "--budgets", "2.5,3.5,4.5,16")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            listed = {Path(line).name for line in proc.stdout.split()}
            for stem in self.FIGURES:
                for ext, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
                    path = out / f"{stem}{ext}"
                    self.assertTrue(path.is_file(), path)
                    self.assertGreater(path.stat().st_size, 1000, path)
                    self.assertEqual(path.read_bytes()[:4], magic, path)
                    self.assertIn(path.name, listed)
            for name in self.TABLES:
                self.assertGreater((out / name).stat().st_size, 0, name)
                self.assertIn(name, listed)
            self.assertFalse((out / "heatmap_j000.png").exists())  # fp16 baseline
            self.assertFalse((out / "heatmap_j007.png").exists())  # failed job
            report = (out / "report.md").read_text(encoding="utf-8")
            self.assertIn("j007", report)
            self.assertIn("ShapeError", report)
            budgets = pd.read_csv(out / "best_per_budget.csv")
            self.assertEqual(sorted(budgets["budget"].unique()), [2.5, 3.5, 4.5, 16.0])

    def test_max_heatmaps_keeps_best_and_worst(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = run_command(str(FIXTURE), "--out", tmp, "--max-heatmaps", "2")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            heatmaps = sorted(p.name for p in Path(tmp).glob("heatmap_*.png"))
            # lowest attn_out_rel: uniform 8-bit (j001); highest: qjl (j005)
            self.assertEqual(heatmaps, ["heatmap_j001.png", "heatmap_j005.png"])

    def test_default_out_dir_is_results_figures(self):
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results"
            results.mkdir()
            for name in ("summary.csv", "layers.csv", "steps.csv"):
                (results / name).write_bytes((FIXTURE / name).read_bytes())
            proc = run_command(str(results), "--max-heatmaps", "0")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertTrue((results / "figures" / "pareto_error_vs_ratio.png").is_file())

    def test_missing_folder_fails_with_one_line(self):
        proc = run_command("/nonexistent/kvlab/results")
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(proc.stdout, "")
        lines = proc.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertIn("/nonexistent/kvlab/results", lines[0])
        self.assertIn("does not exist", lines[0])

    def test_folder_without_summary_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            proc = run_command(tmp)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("summary.csv", proc.stderr)

    def test_bad_budgets_rejected(self):
        proc = run_command(str(FIXTURE), "--budgets", "two,three")
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("budget", proc.stderr)


if __name__ == "__main__":
    unittest.main()
