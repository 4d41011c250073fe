#!/usr/bin/python3
"""Tests of analysis/plot_eviction_zoo.py: where each sweep row is placed
(setting, kept fraction, label), the ranks among same-size methods, and an
end-to-end run on a hand-made summary.csv.

Run from the repository root:  /usr/bin/python3 tests/python/test_plot_eviction_zoo.py
"""

from __future__ import annotations

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

import plot_eviction_zoo as zoo  # noqa: E402

SCRIPT = REPO / "analysis" / "plot_eviction_zoo.py"
METRIC_COLUMNS = ["compression_ratio", "k_rel_err_global", "v_rel_err_global", "attn_out_rel", "dropped_mass"]


def row(method: str, ratio: float, attn: float, k: float = 0.5, v: float = 0.5, **params) -> dict:
    r = {"status": "ok", "method": method, "compression_ratio": ratio, "k_rel_err_global": k,
         "v_rel_err_global": v, "attn_out_rel": attn, "dropped_mass": attn / 2}
    r.update({f"param.{name}": str(value) for name, value in params.items()})
    return r


SUMMARY = [
    row("tova", 1.5, 0.20, k=0.6, keep=0.1, mode="prefill"),
    row("tova", 20.0, 0.60, keep=0.1, mode="decode", recent=0.5),
    row("snapkv", 1.5, 0.10, k=0.7, capacity_ratio=0.1),
    row("pyramidkv", 1.5, 0.05, k=0.8, capacity_ratio=0.1, base="snapkv"),
    row("pyramidkv", 20.0, 0.50, heavy=0.05, recent=0.05, base="h2o"),
    row("h2o", 20.0, 0.70, heavy=0.05, recent=0.05),
    row("streaming", 21.0, 0.40, window=0.1),
    row("think", 1.2, 0.15, k=0.3, v=0.0, prune=0.9, mode="prefill"),
    row("adakv", 1.5, 0.09, k=0.65, keep=0.1, base="snapkv", mode="prefill"),
]


class Placement(unittest.TestCase):
    def test_setting_kept_label(self):
        per = zoo.table(pd.DataFrame(SUMMARY))
        got = {(r.setting, r.kept, r.label) for r in per.itertuples()}
        self.assertEqual(got, {
            ("prefill", 0.1, "tova"), ("decode", 0.1, "tova"), ("prefill", 0.1, "snapkv"),
            ("prefill", 0.1, "pyramidkv/snapkv"), ("decode", 0.1, "pyramidkv/h2o"), ("decode", 0.1, "h2o"),
            ("decode", 0.1, "streaming"), ("prefill", 0.1, "think"), ("prefill", 0.1, "adakv/snapkv")})

    def test_ranks_only_among_same_size(self):
        per = zoo.table(pd.DataFrame(SUMMARY)).set_index(["setting", "label"])
        self.assertEqual(per.loc[("prefill", "pyramidkv/snapkv"), "rank_attn_out_rel"], 1)
        self.assertEqual(per.loc[("prefill", "adakv/snapkv"), "rank_attn_out_rel"], 2)
        self.assertEqual(per.loc[("prefill", "tova"), "rank_k_rel_err_global"], 1)
        self.assertFalse(per.loc[("prefill", "think"), "comparable"])  # 1.2x vs 1.5x: unranked
        self.assertTrue(pd.isna(per.loc[("prefill", "think"), "rank_attn_out_rel"]))
        self.assertEqual(per.loc[("decode", "streaming"), "rank_attn_out_rel"], 1)  # 21 vs 20: within 10 %


class Command(unittest.TestCase):
    def test_end_to_end(self):
        with tempfile.TemporaryDirectory() as tmp:
            pd.DataFrame(SUMMARY).to_csv(Path(tmp) / "summary.csv", index=False)
            out = subprocess.run([sys.executable, str(SCRIPT), tmp], capture_output=True, text=True, check=True)
            written = out.stdout.split()
            self.assertEqual(len(written), 4)
            for p in written:
                self.assertTrue(Path(p).is_file(), p)
            md = (Path(tmp) / "figures" / "eviction_zoo_ranks.md").read_text()
            self.assertIn("## prefill, 10% kept", md)
            self.assertIn("think (other ratio, unranked)", md)

    def test_missing_file_fails_with_one_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, str(SCRIPT), tmp], capture_output=True, text=True)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("summary.csv: file not found", out.stderr)


if __name__ == "__main__":
    unittest.main()
