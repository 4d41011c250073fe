#!/usr/bin/env python3
"""Plot `kvlab decode` CSVs: how compression error compounds over decoding.

    /usr/bin/python3 analysis/plot_decode.py RESULTS_DIR_OR_CSVS... [--out PREFIX]

Reads every *.teacher.csv / *.free.csv (one per method and mode, as written by
experiments/error-compounding.sh) and draws, per method, against decode step:
  (a) KL(p_ref || p_comp) of the next-token distribution (teacher-forced),
      running mean over a window, log scale;
  (b) top-1 agreement (teacher-forced), cumulative mean;
  (c) relative error of the last hidden state (teacher-forced);
  (d) free-running greedy generation: cumulative token match rate.
Writes PREFIX.png and PREFIX.pdf.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import sys

import numpy as np


def _run(rows, label):
    col = lambda k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])
    return {"compressor": label, "mode": rows[0]["mode"], "step": col("step"), "kl": col("kl"),
            "top1": col("top1_agree"), "hidden": col("hidden_rel"),
            "match": np.array([r["token_ref"] == r["token_comp"] for r in rows], dtype=float)}


def load(path):
    """Runs in one CSV: a `kvlab decode --csv` file holds one; a sweep's
    decode_steps.csv (with a job_id column) holds one per job."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "kl" not in rows[0]:
        return []
    if "job_id" in rows[0]:
        jobs = {}
        for r in rows:
            jobs.setdefault(r["job_id"], []).append(r)
        many_dumps = len({r["dump"] for r in rows}) > 1
        return [_run(js, js[0]["compressor"] + (f" [{js[0]['dump']}]" if many_dumps else "")) for js in jobs.values()]
    # Label: the file's method name (kivi-2bit.teacher.csv -> kivi-2bit), else the spec.
    base = os.path.basename(path)
    label = base.split(".")[0] if base.count(".") >= 2 else rows[0]["compressor"]
    return [_run(rows, label)]


def running_mean(x, w):
    if len(x) < w or w <= 1:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    out[w - 1:] = (c[w:] - c[:-w]) / w
    out[:w - 1] = c[1:w] / np.arange(1, w)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="folders holding *.teacher.csv / *.free.csv, or CSV files")
    ap.add_argument("--out", default="error-compounding", help="output prefix (PREFIX.png, PREFIX.pdf)")
    ap.add_argument("--window", type=int, default=16, help="running-mean window for KL and hidden error")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for p in args.inputs:
        files += sorted(glob.glob(os.path.join(p, "*.csv"))) if os.path.isdir(p) else [p]
    runs = [r for f in files for r in load(f)]
    if not runs:
        print(f"plot_decode: no decode CSVs in {args.inputs}", file=sys.stderr)
        return 1
    methods = sorted({r["compressor"] for r in runs})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}

    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5))
    for r in runs:
        c = colors[r["compressor"]]
        s = r["step"]
        if r["mode"] == "teacher":
            kl = running_mean(r["kl"], args.window)
            if np.nanmax(kl) > 0:  # an exact run (fp16) has nothing to show on a log axis
                ax[0, 0].plot(s, kl, color=c, label=r["compressor"])
            ax[0, 1].plot(s, np.cumsum(r["top1"]) / np.arange(1, len(s) + 1), color=c, label=r["compressor"])
            hid = running_mean(r["hidden"], args.window)
            if np.nanmax(hid) > 0:
                ax[1, 0].plot(s, hid, color=c, label=r["compressor"])
        else:
            ax[1, 1].plot(s, np.cumsum(r["match"]) / np.arange(1, len(s) + 1), color=c, label=r["compressor"])
    ax[0, 0].set(yscale="log", xlabel="decode step", ylabel="KL(p_ref ‖ p_comp), nats",
                 title=f"next-token KL, teacher-forced (running mean of {args.window})")
    ax[0, 1].set(xlabel="decode step", ylabel="top-1 agreement (cumulative)", title="top-1 agreement, teacher-forced")
    ax[1, 0].set(yscale="log", xlabel="decode step", ylabel="‖h_comp − h_ref‖ / ‖h_ref‖",
                 title="last hidden state error, teacher-forced")
    ax[1, 1].set(xlabel="decode step", ylabel="token match rate (cumulative)", title="free-running greedy generation")
    for a in ax.flat:
        a.grid(alpha=0.3)
    short = lambda m: m if len(m) <= 48 else m[:47] + "…"  # canonical specs can be long
    handles = [plt.Line2D([], [], color=colors[m], label=short(m)) for m in methods]
    if not any(r["mode"] == "free" for r in runs):  # the free-running panel is empty: legend goes there
        ax[1, 1].axis("off")
        ax[1, 1].set_title("")
        ax[1, 1].legend(handles=handles, loc="center", fontsize=8, frameon=False, title="compressor")
    else:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(methods), 3), fontsize=8, frameon=False)
    fig.suptitle("Model in the loop: compressed vs. uncompressed KV cache (kvlab decode)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out + ".png", dpi=130)
    fig.savefig(args.out + ".pdf")
    print(f"wrote {args.out}.png, {args.out}.pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
