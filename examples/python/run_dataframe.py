#!/usr/bin/env python3
"""Replays the bundled dump through a few methods with kvlab.run() and prints
a table sorted by attention error, plus the error after each 128 decode steps.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/run_dataframe.py
"""

from pathlib import Path

import kvlab

ROOT = Path(__file__).resolve().parents[2]
DUMP = ROOT / "data" / "shakespeare-a.kvdump.h5"

tables = kvlab.run(DUMP, ["kivi-2bit", "gear-2bit", "h2o-20pct", "kvquant-nuq3-1pct"], eval_every=32,
                   tables=["summary", "steps"])
summary = tables["summary"].sort_values("attn_out_rel")
print(summary[["preset", "compression_ratio", "bits_per_element", "k_rel_err_global", "v_rel_err_global",
               "attn_out_rel"]].to_string(index=False))

steps = tables["steps"]
every = steps[steps["decode_step"] % 128 == 0]
print()
print(every.pivot(index="decode_step", columns="method", values="attn_out_rel").round(4).to_string())
