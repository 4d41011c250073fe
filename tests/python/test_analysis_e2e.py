#!/usr/bin/python3
"""End to end: a real `kvlab sweep` (and `kvlab decode`) on the bundled dumps, loaded and plotted.

Checks what a reader sees: short unique labels, compact legends, file names
without hashes, a report.md and report.html that list every figure, failed
jobs reported, the KL axis that matches the columns kvlab wrote, heatmaps
chosen by the user, schema errors that name the file and the column, and
model-in-the-loop panels without an empty one.

Run from the repository root:  /usr/bin/python3 tests/python/test_analysis_e2e.py
(skips with exit 77 when no kvlab binary is found; ctest sets KVLAB_BIN).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "analysis"))
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import sweep_fixture  # noqa: E402
from kvlab_analysis import cli, style  # noqa: E402
from kvlab_analysis.load import ResultsError, load_results  # noqa: E402

KVLAB = sweep_fixture.require_kvlab() if __name__ == "__main__" else sweep_fixture.kvlab_binary()
MAX_LABEL = 32
MAX_LEGEND_ENTRIES = 16
MAX_LEGEND_TEXT = 48
CLEAN_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
HASH = re.compile(r"[0-9a-f]{12,}")
CANONICAL = re.compile(r"\w:\w+=")  # method:param=..., a full spec

CAPTURED: dict[str, object] = {}
_save = style.save_figure


def _capture(fig, out_dir, stem):
    """Record what a reader of the figure sees before it is saved."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    CAPTURED[stem] = {
        "legends": [[t.get_text() for t in legend.get_texts()] for legend in legends],
        "axes": [ax for ax in fig.axes if ax.get_visible()],
    }
    return _save(fig, out_dir, stem)


style.save_figure = _capture


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


class SweepReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="kvlab-analysis-e2e-"))
        cls.results = sweep_fixture.make_results(cls.tmp, KVLAB)
        cls.out = cls.tmp / "figures"
        CAPTURED.clear()
        cls.code, cls.stdout, cls.stderr = run_cli(cls.results, "--out", cls.out,
                                                   "--kvlab", KVLAB, "--no-pdf")
        cls.captured = dict(CAPTURED)
        cls.listed = [Path(line) for line in cls.stdout.split("\n\n")[0].splitlines()]
        cls.summary = pd.read_csv(cls.results / "summary.csv")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def pngs(self) -> list[Path]:
        return [p for p in self.listed if p.suffix == ".png"]

    def test_exit_code_and_closing_summary(self):
        self.assertEqual(self.code, 0, self.stderr)
        paragraph = " ".join(self.stdout.strip().split("\n\n")[-1].split())
        self.assertIn("configuration(s) of", paragraph)
        self.assertIn("failed", paragraph)
        self.assertIn("The lowest attention-output error is", paragraph)
        self.assertIn("raising r from 0 to 4", paragraph)  # the GEAR ablation's effect

    def test_listed_files_exist_with_clean_names(self):
        self.assertTrue(self.listed)
        for path in self.listed:
            self.assertTrue(path.is_file(), path)
            self.assertRegex(path.name, CLEAN_NAME)
            self.assertIsNone(HASH.search(path.name), f"hash-like name {path.name}")
        for path in self.pngs():
            self.assertEqual(path.read_bytes()[:4], b"\x89PNG", path)
            self.assertGreater(path.stat().st_size, 5000, path)

    def test_expected_figures(self):
        stems = {p.stem for p in self.pngs()}
        self.assertTrue({"pareto", "ablation_gear", "error_vs_step"} <= stems, stems)
        heatmaps = sorted(s for s in stems if s.startswith("heatmap_"))
        # best of each family (quant, gear, drop) on each dump whose jobs succeeded
        self.assertEqual(len(heatmaps), 6, heatmaps)
        self.assertTrue(all(h.endswith(("_synth-tiny", "_shakespeare-a")) for h in heatmaps))

    def test_labels_short_unique_and_preset_names(self):
        labels = pd.read_csv(self.out / "labels.csv")
        ok_specs = set(self.summary.loc[self.summary["status"] == "ok", "spec"])
        self.assertEqual(set(labels["spec"]), ok_specs)
        self.assertTrue(labels["label"].is_unique)
        for label in labels["label"]:
            self.assertLessEqual(len(label), MAX_LABEL, label)
            self.assertIsNone(CANONICAL.search(label), label)
        self.assertTrue({"kivi-2bit", "h2o-20pct", "streaming-20pct", "fp16"}
                        <= set(labels["label"]))
        self.assertIn("gear s=0.05 r=2", set(labels["label"]))

    def test_legends_are_compact(self):
        self.assertTrue(self.captured)
        for stem, seen in self.captured.items():
            for entries in seen["legends"]:
                self.assertLessEqual(len(entries), MAX_LEGEND_ENTRIES, (stem, entries))
                for text in entries:
                    self.assertLessEqual(len(text), MAX_LEGEND_TEXT, (stem, text))
                    self.assertIsNone(CANONICAL.search(text), (stem, text))

    def test_reports_list_and_embed_every_figure(self):
        markdown = (self.out / "report.md").read_text(encoding="utf-8")
        page = (self.out / "report.html").read_text(encoding="utf-8")
        for png in self.pngs():
            self.assertIn("![", markdown)
            self.assertIn(f"({png.name})", markdown, png.name)
            self.assertIn(png.name, page, png.name)
        self.assertEqual(page.count('src="data:image/png;base64,'), len(self.pngs()))
        self.assertNotRegex(page, r'(src|href)="(https?|file):')
        for name in ("report.md", "report.html", "labels.csv", "best_per_budget.csv"):
            self.assertIn(name, markdown)

    def test_failed_jobs_reported(self):
        failed = self.summary[self.summary["status"] == "failed"]
        self.assertEqual(len(failed), 10)  # every configuration on the broken dump
        markdown = (self.out / "report.md").read_text(encoding="utf-8")
        self.assertIn("## Failed jobs", markdown)
        for job in failed["job_id"]:
            self.assertIn(job, markdown)

    def test_kl_axis_matches_the_columns_written(self):
        steps = pd.read_csv(self.results / "steps.csv", nrows=1)
        markdown = (self.out / "report.md").read_text(encoding="utf-8")
        caption = next(line for line in markdown.splitlines()
                       if line.startswith("`error_vs_step.png`"))
        if "attn_kl_rev" in steps.columns:
            self.assertIn("KL(p̂ ‖ p)", caption)
        else:
            self.assertIn("over kept tokens", caption)
            self.assertIn("dropped", caption)

    def test_heatmaps_chosen_by_the_user(self):
        out = self.tmp / "chosen"
        code, stdout, stderr = run_cli(self.results, "--out", out, "--kvlab", KVLAB,
                                       "--no-pdf", "--heatmap", "kivi-2bit", "gear s=0.05 r=2")
        self.assertEqual(code, 0, stderr)
        heatmaps = sorted(p.name for p in out.glob("heatmap_*.png"))
        self.assertEqual(heatmaps, ["heatmap_gear_s0.05_r2_shakespeare-a.png",
                                    "heatmap_gear_s0.05_r2_synth-tiny.png",
                                    "heatmap_kivi-2bit_shakespeare-a.png",
                                    "heatmap_kivi-2bit_synth-tiny.png"])
        code, stdout, stderr = run_cli(self.results, "--out", out, "--kvlab", KVLAB,
                                       "--heatmap", "kivi-9bit")
        self.assertEqual(code, 2)
        self.assertIn("kivi-9bit", stderr)
        self.assertIn("kivi-2bit", stderr)  # the message lists what exists


class ReverseKlTest(unittest.TestCase):
    """kvlab writes attn_kl_rev: it reflects the droppers' lost mass, and the KL axes show it."""

    def test_reverse_kl_reflects_dropped_mass_and_is_plotted(self):
        with tempfile.TemporaryDirectory(prefix="kvlab-analysis-klrev-") as tmp:
            results = sweep_fixture.make_results(Path(tmp), KVLAB)
            steps = pd.read_csv(results / "steps.csv")
            drop = steps[steps["spec"].str.startswith(("h2o", "streaming"))]
            self.assertGreater(len(drop), 0)
            # Per head, an exact dropper's KL(p̂ ‖ p) is −log(kept mass); the mean
            # over heads is at least −log of the mean kept mass (Jensen).
            bound = -np.log1p(-drop["dropped_mass"])
            self.assertTrue((drop["attn_kl_rev"] >= bound - 1e-12).all())
            self.assertTrue((drop["attn_kl_rev"] > 1e-3).all())
            self.assertTrue((drop["attn_kl"] < 1e-9).all())  # the renormalised forward KL cannot see it
            CAPTURED.clear()
            code, _, stderr = run_cli(results, "--out", Path(tmp) / "fig", "--kvlab", KVLAB,
                                      "--no-pdf", "--no-heatmaps")
            self.assertEqual(code, 0, stderr)
            ylabels = [ax.get_ylabel() for ax in CAPTURED["error_vs_step"]["axes"]]
            self.assertIn("attention KL(p̂ ‖ p), nats", ylabels)
            self.assertFalse(any("dropped" in y or "kept tokens" in y for y in ylabels), ylabels)
            report = (Path(tmp) / "fig" / "report.md").read_text(encoding="utf-8")
            self.assertNotIn("floor", report)


class LoaderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="kvlab-analysis-load-"))
        cls.results = sweep_fixture.make_results(cls.tmp, KVLAB)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_real_output_splits_ok_and_failed(self):
        results = load_results(self.results)
        self.assertEqual(len(results.ok) + len(results.failed), len(results.summary))
        self.assertEqual(set(results.failed["dump"]), {"broken.kvdump.h5"})
        failed = set(results.failed["job_id"])
        for table in (results.layers, results.steps):
            self.assertFalse(failed & set(table["job_id"]))
        self.assertTrue(pd.api.types.is_numeric_dtype(results.ok["attn_out_rel"]))
        self.assertEqual(results.config.get("name"), "analysis-e2e")

    def mutated(self, name: str, change) -> Path:
        folder = self.tmp / f"mutated-{name}-{len(list(self.tmp.iterdir()))}"
        shutil.copytree(self.results, folder)
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        change(frame).to_csv(folder / name, index=False)
        return folder

    def assert_error(self, folder: Path, *parts: str) -> None:
        with self.assertRaises(ResultsError) as caught:
            load_results(folder)
        for part in parts:
            self.assertIn(part, str(caught.exception))
        self.assertEqual(len(str(caught.exception).splitlines()), 1)

    def test_unknown_missing_and_mistyped_columns(self):
        self.assert_error(self.mutated("steps.csv", lambda f: f.assign(surprise="1")),
                          "steps.csv", "unknown column 'surprise'")
        self.assert_error(self.mutated("summary.csv", lambda f: f.drop(columns=["attn_out_rel"])),
                          "summary.csv", "attn_out_rel")
        self.assert_error(self.mutated("layers.csv", lambda f: f.assign(layer="first")),
                          "layers.csv", "'layer'", "int")
        self.assert_error(self.mutated("summary.csv", lambda f: f.assign(attn_kl="n/a")),
                          "summary.csv", "'attn_kl'", "float")

    def test_command_fails_in_one_line(self):
        script = sweep_fixture.REPO / "analysis" / "plot_results.py"
        for target, expected in ((self.tmp / "missing", "does not exist"),
                                 (self.tmp, "summary.csv")):
            proc = subprocess.run([sys.executable, str(script), str(target)], capture_output=True,
                                  text=True, timeout=300)
            self.assertEqual(proc.returncode, 2, proc.stderr)
            self.assertEqual(proc.stdout, "")
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
            self.assertIn(expected, proc.stderr)


class DecodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="kvlab-analysis-decode-"))
        cls.csvs = sweep_fixture.make_decode_csvs(cls.tmp, KVLAB)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def panels(self, stem: str) -> list:
        """Visible axes that hold plotted lines (the legend slot has none)."""
        return [ax for ax in CAPTURED[stem]["axes"] if ax.lines]

    def test_teacher_and_free_runs_averaged_over_dumps(self):
        CAPTURED.clear()
        code, stdout, stderr = run_cli(self.csvs, "--out", self.tmp / "both", "--kvlab", KVLAB,
                                       "--no-pdf")
        self.assertEqual(code, 0, stderr)
        axes = CAPTURED["model_in_the_loop"]["axes"]
        self.assertEqual(len(self.panels("model_in_the_loop")), 5)  # 4 teacher + 1 free
        self.assertEqual(len(axes), 6)  # the sixth slot holds the legend, not an empty panel
        report = (self.tmp / "both" / "report.md").read_text(encoding="utf-8")
        self.assertIn("mean over 1/2 dumps", report)  # kivi-2bit teacher ran on both dumps
        self.assertIn("kivi-2bit", stdout.split("\n\n")[-1])

    def test_teacher_only_has_no_empty_panel(self):
        teacher = self.tmp / "teacher"
        teacher.mkdir()
        for csv in self.csvs.glob("*-teacher-*.csv"):
            shutil.copy(csv, teacher / csv.name)
        CAPTURED.clear()
        code, _, stderr = run_cli(teacher, "--out", self.tmp / "teacher-out", "--kvlab", KVLAB,
                                  "--no-pdf")
        self.assertEqual(code, 0, stderr)
        self.assertEqual(len(self.panels("model_in_the_loop")), 4)
        self.assertEqual(len(CAPTURED["model_in_the_loop"]["axes"]), 4)

    def test_plot_decode_entry_point_writes_the_prefix(self):
        script = sweep_fixture.REPO / "analysis" / "plot_decode.py"
        prefix = self.tmp / "fig" / "compounding"
        proc = subprocess.run([sys.executable, str(script), str(self.csvs), "--out", str(prefix),
                               "--kvlab", str(KVLAB)], capture_output=True, text=True,
                              timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
            self.assertEqual(prefix.with_suffix(suffix).read_bytes()[:4], magic)


if __name__ == "__main__":
    unittest.main()
