#!/usr/bin/env python3
"""Summary of experiments/gear-vs-kivi-matched.sh (markdown on stdout).

    /usr/bin/python3 experiments/gear_vs_kivi_matched.py results/gear-vs-kivi-matched

Reads every {teacher,free}-s{seed}/summary.csv. The dumps are the independent
samples: a configuration's value on a dump is its mean over the seeds that ran
it (KIVI is deterministic and runs once); tables give the mean over dumps ±
the half-width of the 95 % confidence interval (Student t, dumps − 1 degrees
of freedom), and paired differences GEAR − KIVI on the same dumps with their
interval and the number of dumps where GEAR is better.
"""

import glob
import math
import os
import re
import sys

import pandas as pd

# Student t 0.975 quantiles, df = 1..30 (beyond: normal approximation + correction).
T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
        2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
        2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423]


def t975(df):
    return T975[df - 1] if df <= 30 else 1.96 + 2.4 / df


def mean_ci(values):
    v = [x for x in values if not (isinstance(x, float) and math.isnan(x))]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    m = sum(v) / n
    if n < 2:
        return m, float("nan"), n
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    return m, t975(n - 1) * sd / math.sqrt(n), n


def label(spec):
    method, _, params = spec.partition(":")
    p = dict(kv.split("=", 1) for kv in params.split(",") if kv)
    if method == "kivi":
        return f"KIVI G{p['group']} R{p['residual']}"
    name = {"gear": "GEAR", "gear-l": "GEAR-L"}.get(method, method)
    s = f" s{p['sparsity']}" if "sparsity" in p else ""
    if p.get("recompress") == "true":  # the released whole-cache path: rank_decode only
        return f"{name} G{p['group']} nb{p['buffer']} r{p['rank_decode']}{s}{' compat' if p.get('compat_outliers') == 'true' else ''} recompress"
    compat = " compat" if p.get("compat_outliers") == "true" else ""
    return f"{name} G{p['group']} nb{p['buffer']} r{p['rank']}/{p['rank_decode']}{s}{compat}"


def load(root):
    frames = []
    for path in sorted(glob.glob(os.path.join(root, "*-s*", "summary.csv"))):
        m = re.fullmatch(r"(teacher|free)-s(\d+)", os.path.basename(os.path.dirname(path)))
        if not m:
            continue
        d = pd.read_csv(path)
        failed = d[d.status != "ok"]
        if len(failed):
            print(f"warning: {path}: {len(failed)} failed jobs (first: {failed.error.iloc[0]})", file=sys.stderr)
        d = d[d.status == "ok"].copy()
        d["mode"], d["seed"] = m.group(1), int(m.group(2))
        frames.append(d)
    if not frames:
        sys.exit(f"{root}: no */summary.csv (run experiments/gear-vs-kivi-matched.sh first)")
    d = pd.concat(frames, ignore_index=True)
    d["config"] = d.spec.map(label)
    return d


def per_dump(d, mode, metric):
    """config -> {dump: mean over seeds}."""
    x = d[d["mode"] == mode].groupby(["config", "dump"])[metric].mean()
    return {c: x[c].to_dict() for c in x.index.get_level_values(0).unique()}


def fmt(m, hw, digits):
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if math.isnan(hw) else f"{m:.{digits}f} ± {hw:.{digits}f}"


METRICS = [  # (mode, column, heading, digits, higher is better)
    ("teacher", "decode_bits_per_element", "bits/elem (mean over decode)", 2, None),
    ("teacher", "k_rel_err_global", "replay K rel err", 3, False),
    ("teacher", "v_rel_err_global", "replay V rel err", 3, False),
    ("teacher", "attn_out_rel", "replay attn out rel", 3, False),
    ("teacher", "decode_mean_kl", "loop KL (teacher)", 4, False),
    ("teacher", "decode_top1", "loop top-1 (teacher)", 3, True),
    ("teacher", "decode_ppl_ratio", "loop ppl ratio", 4, False),
    ("free", "decode_shared_steps", "free: steps to divergence", 1, True),
    ("free", "decode_mean_kl", "free: KL before divergence", 4, False),
]

PAIRS = [  # (GEAR config, KIVI config, what is matched)
    ("GEAR G64 nb64 r4/2 s0.02", "KIVI G32 R128", "presets as published (window 64 vs 128)"),
    ("GEAR G64 nb64 r4/2 s0.02", "KIVI G32 R64", "FP16 window 64"),
    ("GEAR G64 nb128 r4/2 s0.02", "KIVI G32 R128", "FP16 window 128"),
    ("GEAR G64 nb128 r3/2 s0.02", "KIVI G32 R128", "window 128 and bits/element"),
    ("GEAR G64 nb128 r4/2 s0.02", "KIVI G64 R128", "window 128, same G=64 backbone (what S + L add)"),
    ("GEAR-L G64 nb128 r4/2", "KIVI G64 R128", "window 128, G=64 backbone + L only"),
    ("GEAR G64 nb64 r4/2 s0.02 compat", "KIVI G32 R128", "bits/element, released outlier rule (window 64 vs 128)"),
    ("GEAR G64 nb128 r4/2 s0.02 compat", "KIVI G32 R128", "window 128, released outlier rule"),
    ("GEAR G64 nb64 r2 s0.02 compat recompress", "KIVI G32 R128", "GEAR as its published scripts run it"),
]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "results/gear-vs-kivi-matched"
    d = load(root)
    dumps = sorted(d.dump.unique())
    seeds = sorted(d.seed.unique())
    configs = list(dict.fromkeys(d[d["mode"] == "teacher"].config))
    print(f"# GEAR vs KIVI, matched FP16 window and bits ({len(dumps)} dumps, seeds {seeds})\n")
    print("Mean over dumps ± half-width of the 95 % confidence interval (Student t, "
          f"{len(dumps) - 1} degrees of freedom); each dump's value is its mean over seeds.\n")
    print("| configuration | " + " | ".join(m[2] for m in METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    data = {(mode, col): per_dump(d, mode, col) for mode, col, *_ in METRICS}
    for c in configs:
        cells = []
        for mode, col, _, digits, _ in METRICS:
            m, hw, _ = mean_ci(list(data[(mode, col)].get(c, {}).values()))
            cells.append(fmt(m, hw, digits))
        print(f"| {c} | " + " | ".join(cells) + " |")

    print("\nPaired differences GEAR − KIVI on the same dumps (mean ± 95 % half-width; "
          "'GEAR better' counts the dumps where GEAR's value is better):\n")
    heads = [m for m in METRICS if m[4] is not None]
    print("| GEAR | KIVI | matched | " + " | ".join(m[2] for m in heads) + " |")
    print("|---" * (len(heads) + 3) + "|")
    for g, k, what in PAIRS:
        if g not in configs or k not in configs:
            continue
        cells = []
        for mode, col, _, digits, higher in heads:
            a, b = data[(mode, col)].get(g, {}), data[(mode, col)].get(k, {})
            common = [x for x in a if x in b]
            diffs = [a[x] - b[x] for x in common]
            m, hw, n = mean_ci(diffs)
            better = sum((x > 0) == higher for x in diffs if x != 0)
            cells.append(f"{fmt(m, hw, digits)} ({better}/{n})")
        print(f"| {g} | {k} | {what} | " + " | ".join(cells) + " |")

    # Seed-to-seed spread of GEAR, for scale.
    gear = d[(d["mode"] == "teacher") & d.config.str.startswith("GEAR")]
    if len(seeds) > 1 and len(gear):
        sd = gear.groupby(["config", "dump"]).decode_mean_kl.std().groupby(level=0).mean()
        print("\nGEAR's seed-to-seed standard deviation of the teacher KL (mean over dumps): " +
              ", ".join(f"{c} {v:.4f}" for c, v in sd.items()))


if __name__ == "__main__":
    main()
