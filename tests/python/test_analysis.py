#!/usr/bin/python3
"""Unit tests of the kvlab analysis package on hand-made inputs.

Run from the repository root:  /usr/bin/python3 tests/python/test_analysis.py
(test_analysis_e2e.py feeds it real `kvlab sweep` output.)
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "analysis"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd  # noqa: E402

from kvlab_analysis.ablation import Structure, choose_facet  # noqa: E402
from kvlab_analysis.catalog import Catalog, parse_list_output  # noqa: E402
from kvlab_analysis.configs import per_config  # noqa: E402
from kvlab_analysis.figure import slug  # noqa: E402
from kvlab_analysis.labels import Labeller, format_value  # noqa: E402
from kvlab_analysis.pareto import (pareto_front, pareto_fronts_by, pareto_mask,  # noqa: E402
                                   pareto_table)
from kvlab_analysis.schema import (SCHEMA_PATH, SchemaError, load_schema,  # noqa: E402
                                   parse_schema, validate)
from kvlab_analysis.specs import SpecSyntaxError, parse_spec  # noqa: E402
from kvlab_analysis.stats import mean_interval, t975  # noqa: E402
from kvlab_analysis.style import number_text  # noqa: E402
from kvlab_analysis.tables import best_per_budget, to_markdown, write_budget_tables  # noqa: E402

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

    def test_all_nan_gives_empty_front(self):
        self.assertTrue(pareto_front(self.frame.assign(err=NAN), "err").empty)

    def test_fronts_per_family(self):
        fronts = pareto_fronts_by(self.frame, "err")
        self.assertEqual(set(fronts), {"baseline", "quant", "drop"})
        self.assertEqual(list(fronts["quant"]["spec"]), ["b:2", "d:4"])
        self.assertEqual(list(fronts["drop"]["spec"]), ["f:3", "e:3"])

    def test_pareto_table_scopes(self):
        table = pareto_table(self.frame, ["err"])
        self.assertEqual(list(table[table["scope"] == "overall"]["spec"]), ["fp16", "b:2", "d:4"])
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

    def test_known_best_per_budget_inclusive(self):
        self.assertEqual(self.best([2.5, 3.5, 4.5, 5.0, 8.5, 16.0]),
                         {2.5: "", 3.5: "k:2", 4.5: "u:4", 5.0: "k:4", 8.5: "u:8", 16.0: "fp16"})

    def test_tie_broken_by_fewer_bits_then_ratio_then_spec(self):
        tied = configs([("b:1", "quant", "ok", 4.0, 3.0, 0.1),
                        ("a:1", "quant", "ok", 4.0, 3.0, 0.1),
                        ("c:1", "quant", "ok", 4.5, 3.0, 0.1)])
        self.assertEqual(best_per_budget(tied, [3.0], ["err"])["spec"].iloc[0], "c:1")
        self.assertEqual(best_per_budget(tied.iloc[:2], [3.0], ["err"])["spec"].iloc[0], "a:1")

    def test_empty_budget_row_and_markdown(self):
        table = best_per_budget(self.frame, [2.5, 16.0], ["err"])
        self.assertTrue(math.isnan(table["error"].iloc[0]))
        markdown = to_markdown(table)
        self.assertIn("(none fits)", markdown)
        self.assertIn("`fp16`", markdown)

    def test_write_tables(self):
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_budget_tables(best_per_budget(self.frame, [4.5], ["err"]), Path(tmp))
            self.assertEqual([p.name for p in paths], ["best_per_budget.csv", "best_per_budget.md"])
            self.assertEqual(pd.read_csv(paths[0])["spec"].tolist(), ["u:4"])


class StatsTest(unittest.TestCase):
    def frame(self, values: dict[str, list[float]]) -> pd.DataFrame:
        return pd.DataFrame([{"spec": s, "x": v} for s, vs in values.items() for v in vs])

    def test_t_quantiles(self):
        self.assertAlmostEqual(t975(1), 12.706, places=3)
        self.assertAlmostEqual(t975(10), 2.228, places=3)
        self.assertAlmostEqual(t975(60), 2.000, places=2)
        try:
            from scipy.stats import t
        except ImportError:
            return
        for df in (1, 2, 5, 29, 31, 45, 100, 500):
            self.assertAlmostEqual(t975(df), t.ppf(0.975, df), delta=0.003)

    def test_ci95_from_three_runs(self):
        out = mean_interval(self.frame({"a": [1.0, 2.0, 3.0]}), ["spec"], ["x"], "ci95")
        half = 4.303 / math.sqrt(3)  # s = 1
        self.assertAlmostEqual(out["x"].iloc[0], 2.0)
        self.assertAlmostEqual(out["x_lo"].iloc[0], 2.0 - half, places=3)
        self.assertAlmostEqual(out["x_hi"].iloc[0], 2.0 + half, places=3)

    def test_auto_uses_range_for_two_runs_and_nothing_for_one(self):
        out = mean_interval(self.frame({"a": [1.0, 4.0], "b": [5.0]}), ["spec"], ["x"]).set_index(
            "spec")
        self.assertEqual((out.loc["a", "x_lo"], out.loc["a", "x_hi"]), (1.0, 4.0))
        self.assertEqual((out.loc["b", "x_lo"], out.loc["b", "x_hi"]), (5.0, 5.0))
        self.assertEqual(list(out["n"]), [2, 1])

    def test_per_config_means_and_bounds(self):
        ok = pd.DataFrame({"spec": ["k:2", "k:2", "k:4"], "method": ["k", "k", "k"],
                           "family": ["quant"] * 3, "dump": ["a", "b", "a"],
                           "attn_out_rel": [0.2, 0.4, 0.1], "compression_ratio": [4.0, 4.0, 2.0]})
        table = per_config(ok).set_index("spec")
        self.assertAlmostEqual(table.loc["k:2", "attn_out_rel"], 0.3)
        self.assertEqual(table.loc["k:2", "n_dumps"], 2)
        self.assertAlmostEqual(table.loc["k:2", "attn_out_rel_lo"], 0.2)
        self.assertAlmostEqual(table.loc["k:2", "attn_out_rel_hi"], 0.4)
        self.assertEqual(table.loc["k:4", "n_dumps"], 1)


class SpecTest(unittest.TestCase):
    def test_nested_spec(self):
        spec = parse_spec("h2o:heavy=0.1,inner=(uniform:bits=4,group=64),recent=0.2")
        self.assertEqual(spec.method, "h2o")
        self.assertEqual(spec.as_dict(), {"heavy": "0.1", "inner": "uniform:bits=4,group=64",
                                          "recent": "0.2"})
        self.assertEqual(spec.nested, frozenset({"inner"}))
        self.assertEqual(parse_spec("fp16").params, ())

    def test_malformed(self):
        for text in ("h2o:inner=(uniform:bits=4", "kivi:bits", ":bits=2", "a:b=(c))"):
            with self.assertRaises(SpecSyntaxError, msg=text):
                parse_spec(text)


GEAR_DEFAULT = "gear:bits=2,group=64,sparsity=0.02,rank=4,buffer=64,recompress=false"


def gear(**changes) -> str:
    params = parse_spec(GEAR_DEFAULT).as_dict()
    params.update({k: str(v) for k, v in changes.items()})
    return "gear:" + ",".join(f"{k}={v}" for k, v in params.items())


CATALOG = Catalog(
    presets={GEAR_DEFAULT: "gear-2bit", "uniform:bits=4,group=64,axis=token": "uniform-4bit"},
    defaults={"gear": GEAR_DEFAULT, "h2o": "h2o:heavy=0.1,recent=0.1,heavy_tokens=0",
              "snapkv": "snapkv:window=32,capacity=1024,capacity_ratio=0",
              "uniform": "uniform:bits=4,group=64,axis=token"},
    families={"gear": "gear", "h2o": "drop"}, source="test")


class LabelTest(unittest.TestCase):
    def test_preset_name_and_varying_parameters(self):
        specs = [GEAR_DEFAULT, gear(rank=8), gear(rank=8, sparsity=0.05), gear(bits=4)]
        labels = Labeller(specs, CATALOG)
        self.assertEqual(labels(GEAR_DEFAULT), "gear-2bit")
        self.assertEqual(labels(gear(rank=8)), "gear b=2 s=0.02 r=8")
        self.assertEqual(labels(gear(bits=4)), "gear b=4 s=0.02 r=4")
        self.assertEqual(len(set(labels.labels.values())), len(specs))

    def test_single_spec_shows_what_differs_from_default(self):
        snap = "snapkv:window=32,capacity=128,capacity_ratio=0"
        self.assertEqual(Labeller([snap, GEAR_DEFAULT], CATALOG)(snap), "snapkv C=128")

    def test_prompt_fractions_as_percent_and_nested_inner(self):
        a = "h2o:heavy=0.05,recent=0.05,heavy_tokens=0"
        b = "h2o:heavy=0.2,recent=0.2,heavy_tokens=0,inner=(uniform:bits=4,group=64,axis=token)"
        labels = Labeller([a, b], CATALOG)
        self.assertEqual(labels(a), "h2o hh=5% rec=5%")
        self.assertEqual(labels(b), "h2o hh=20% rec=20% +uniform-4bit")

    def test_token_counts_with_a_fraction_name_stay_counts(self):
        # SKVQ's window is a number of tokens, StreamingLLM's a prompt fraction.
        self.assertEqual(format_value("window", "32"), "32")
        self.assertEqual(format_value("window", "0.3"), "30%")
        specs = ["skvq:bits=2,window=32", "skvq:bits=2,window=128"]
        labels = Labeller(specs, Catalog())
        self.assertEqual(labels(specs[1]), "skvq win=128")

    def test_flags_and_uniqueness_without_catalog(self):
        specs = [gear(buffer=16), gear(recompress="true"), gear()]
        labels = Labeller(specs, Catalog())
        self.assertEqual(labels(gear(recompress="true")), "gear recomp")
        self.assertEqual(labels(gear(buffer=16)), "gear nb=16")
        self.assertEqual(len(set(labels.labels.values())), 3)


class AblationTest(unittest.TestCase):
    def test_zipped_parameters_form_one_dimension(self):
        specs = [f"h2o:heavy={v},recent={v}" for v in (0.05, 0.1, 0.2)]
        series = list(Structure(specs).series.values())
        self.assertEqual(len(series), 1)
        self.assertEqual([d.params for d in series[0].dims], [("heavy", "recent")])

    def test_categorical_parameters_split_series(self):
        specs = [f"pyramidkv:base=snapkv,capacity_ratio={c},heavy=0.1" for c in (0.1, 0.2)] + [
            f"pyramidkv:base=h2o,capacity_ratio=0,heavy={h}" for h in (0.05, 0.1, 0.2)]
        structure = Structure(specs)
        dims = {s.key: [d.params for d in s.dims] for s in structure.series.values()}
        self.assertEqual(dims, {(("base", "snapkv"),): [("capacity_ratio",)],
                                (("base", "h2o"),): [("heavy",)]})

    def test_three_dimensions_facet_by_the_smallest(self):
        specs = [gear(bits=b, rank=r, sparsity=s) for b in (2, 3) for r in (0, 2, 4)
                 for s in (0, 0.01, 0.02, 0.05)]
        structure = Structure(specs)
        dims = structure.largest_series().dims
        self.assertEqual([d.params[0] for d in dims], ["sparsity", "rank", "bits"])
        facet = choose_facet(structure)
        self.assertEqual((facet.param, facet.values), ("bits", (2.0, 3.0)))


class SchemaTest(unittest.TestCase):
    TABLE = parse_schema({"tables": {"t.csv": {"columns": [
        {"name": "id", "type": "string"}, {"name": "n", "type": "int"},
        {"name": "x", "type": "float"}, {"name": "opt", "type": "float", "optional": True}],
        "dynamic_prefixes": ["param."]}}, "extra": 1})["t.csv"]

    def check(self, frame: dict) -> None:
        validate(pd.DataFrame(frame, dtype=str), self.TABLE, Path("t.csv"))

    def test_valid_with_blanks_dynamic_and_optional_columns(self):
        self.check({"id": ["a", "b"], "n": ["1", ""], "x": ["0.5", "1e-3"], "param.k": ["x", ""]})

    def test_errors_name_file_and_column(self):
        cases = [({"id": ["a"], "n": ["1"], "x": ["1"], "y": ["2"]}, "unknown column 'y'"),
                 ({"id": ["a"], "x": ["1"]}, "missing required column(s): n"),
                 ({"id": ["a"], "n": ["1.5"], "x": ["1"]}, "column 'n' should hold int"),
                 ({"id": ["a"], "n": ["1"], "x": ["abc"]}, "column 'x' should hold float")]
        for frame, message in cases:
            with self.assertRaises(SchemaError) as caught:
                self.check(frame)
            self.assertIn("t.csv", str(caught.exception))
            self.assertIn(message, str(caught.exception))

    def test_committed_schema_covers_every_results_file(self):
        tables = load_schema()
        self.assertEqual(set(tables), {"summary.csv", "layers.csv", "steps.csv", "timing.csv",
                                       "decode_steps.csv"})
        for table in tables.values():
            names = [c.name for c in table.columns]
            self.assertEqual(len(names), len(set(names)), table.name)
        self.assertEqual(json.loads(SCHEMA_PATH.read_text())["schema_version"], 1)

    def test_bad_schema_document(self):
        with self.assertRaisesRegex(SchemaError, "type"):
            parse_schema({"tables": {"a.csv": {"columns": [{"name": "x", "type": "double"}]}}})


class SmallHelpersTest(unittest.TestCase):
    def test_tick_text(self):
        self.assertEqual([number_text(v) for v in (0.1, 0.25, 3, 1e-5, 2e-4, 20000)],
                         ["0.1", "0.25", "3", "1e-5", "2e-4", "2e4"])

    def test_slug_has_no_hash_or_odd_characters(self):
        self.assertEqual(slug("gear b=2 r=4 s=0.02"), "gear_b2_r4_s0.02")
        self.assertEqual(slug("h2o hh=5% +uniform-4bit"), "h2o_hh5pct_uniform-4bit")

    def test_kvlab_list_parsing(self):
        text = ("fp16  [baseline]\n  Uncompressed\n\nkivi  [quant]\n  KIVI\n  parameter  default\n"
                "Presets (usable wherever a spec is accepted):\n  preset  spec  description\n"
                "----\n  kivi-2bit  kivi:bits=2,group=32  KIVI 2-bit, G=32\n")
        presets, families = parse_list_output(text)
        self.assertEqual(presets, {"kivi-2bit": "kivi:bits=2,group=32"})
        self.assertEqual(families, {"fp16": "baseline", "kivi": "quant"})


if __name__ == "__main__":
    unittest.main()
