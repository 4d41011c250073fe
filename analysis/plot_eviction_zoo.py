#!/usr/bin/env python3
"""Figures and ranking tables of the eviction-zoo sweep (experiments/eviction-zoo.yaml).

    /usr/bin/python3 analysis/plot_eviction_zoo.py RESULTS_DIR [--out DIR]

Reads RESULTS_DIR/summary.csv (mean over dumps per spec) and writes to DIR
(default RESULTS_DIR/figures):
  eviction_zoo.{png,pdf}   error vs compression ratio, one line per method over
                           its budgets; rows: the two settings (prefill: the
                           prompt is cut once, decode tokens kept; decode: the
                           budget is kept while decoding); columns: K, V and
                           attention-output relative error, and dropped mass
  eviction_zoo_ranks.csv   per setting and kept fraction, every method's error
                           and its rank by K, V, attention error and dropped mass
  eviction_zoo_ranks.md    the same, plus per setting and kept fraction the
                           Spearman correlation of the K/V ranking with the
                           attention ranking, and the methods whose ranks
                           differ most
Each row of the sweep is placed by the fraction of the prompt its budget keeps
(keep, capacity_ratio, heavy + recent, window; think: the fraction of key
channels kept, 1 - prune). Prints every file it wrote.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kvlab_analysis.load import SUMMARY_FILE  # noqa: E402
from kvlab_analysis.style import plt, save_figure  # noqa: E402

METRICS = [("k_rel_err_global", "K rel. error"), ("v_rel_err_global", "V rel. error"),
           ("attn_out_rel", "attention-output rel. error"), ("dropped_mass", "dropped attention mass")]
DECODE_NATIVE = {"h2o", "streaming"}


def _num(row, name) -> float:
    v = _str(row, name)
    return float(v) if v else np.nan


def _str(row, name) -> str:
    v = row.get(f"param.{name}")
    return v if isinstance(v, str) else ""


def read_summary(folder: Path) -> pd.DataFrame:
    """summary.csv with parameters as text (kvlab_analysis.load makes them numeric)."""
    path = folder / SUMMARY_FILE
    if not path.is_file():
        raise SystemExit(f"plot_eviction_zoo: {path}: file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    needed = ["status", "method", "compression_ratio"] + [m for m, _ in METRICS]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SystemExit(f"plot_eviction_zoo: {path}: missing column(s) {', '.join(missing)}")
    for c in needed[2:]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def setting(row) -> str:
    if row["method"] in DECODE_NATIVE or (row["method"] == "pyramidkv" and _str(row, "base") == "h2o"):
        return "decode"
    return "decode" if _str(row, "mode") == "decode" else "prefill"


def kept_fraction(row) -> float:
    m = row["method"]
    if m == "think":
        return round(1 - _num(row, "prune"), 3)
    if m == "snapkv" or (m == "pyramidkv" and _str(row, "base") != "h2o"):
        return _num(row, "capacity_ratio")
    if m in ("h2o", "pyramidkv"):
        return round(_num(row, "heavy") + _num(row, "recent"), 3)
    if m == "streaming":
        return _num(row, "window")
    return _num(row, "keep")


def label(row) -> str:
    m = row["method"]
    if m in ("pyramidkv", "adakv", "criticalkv"):
        return f"{m}/{_str(row, 'base') or 'snapkv'}"
    return m


def table(summary: pd.DataFrame) -> pd.DataFrame:
    ok = summary[summary["status"] == "ok"].copy()
    ok["setting"] = ok.apply(setting, axis=1)
    ok["kept"] = ok.apply(kept_fraction, axis=1)
    ok["label"] = ok.apply(label, axis=1)
    cols = ["compression_ratio"] + [m for m, _ in METRICS]
    per = ok.groupby(["setting", "kept", "label"], as_index=False)[cols].mean()
    # Ranks compare methods of the same size: rows whose ratio is more than 10 %
    # off the median of their (setting, kept) group (think prunes channels,
    # lagkv's decode mode keeps a rate, not a count) are left unranked.
    median = per.groupby(["setting", "kept"])["compression_ratio"].transform("median")
    per["comparable"] = (per["compression_ratio"] / median - 1).abs() <= 0.1
    for m, _ in METRICS:
        per[f"rank_{m}"] = per[per["comparable"]].groupby(["setting", "kept"])[m].rank(method="min")
    return per.sort_values(["setting", "kept", "attn_out_rel"])


def plot(per: pd.DataFrame, out: Path) -> list[Path]:
    labels = sorted(per["label"].unique())
    cmap = plt.get_cmap("tab20")
    colors = {lab: cmap(i % 20) for i, lab in enumerate(labels)}
    marks = "osv^<>DPX*hpd8H"
    markers = {lab: marks[i % len(marks)] for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(2, len(METRICS), figsize=(5.2 * len(METRICS), 9), squeeze=False)
    for r, st in enumerate(["prefill", "decode"]):
        sub = per[per["setting"] == st]
        for c, (metric, name) in enumerate(METRICS):
            ax = axes[r][c]
            for lab, g in sub.groupby("label"):
                g = g.sort_values("compression_ratio")
                style = "--" if lab == "random" else "-"
                ax.plot(g["compression_ratio"], g[metric], style, marker=markers[lab], ms=4, color=colors[lab], label=lab,
                        lw=2.2 if lab == "random" else 1.2)
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio (x vs FP16)")
            ax.set_ylabel(name)
            ax.set_title(f"{st}: {name}")
        axes[r][0].legend(ncol=2, fontsize=7)
    fig.suptitle("eviction zoo: 10-50 % of the prompt kept (mean over the bundled dumps)")
    fig.tight_layout()
    return save_figure(fig, out, "eviction_zoo")


def spearman(a: pd.Series, b: pd.Series) -> float:
    return float(np.corrcoef(a.rank(), b.rank())[0, 1])


def ranks_md(per: pd.DataFrame) -> str:
    lines = ["# eviction zoo: rankings", "",
             "Rank 1 = lowest error among the methods of a setting at one kept fraction and the same "
             "compression ratio (within 10 %); rho = Spearman correlation with the attention-output "
             "ranking over those methods.", ""]
    for (st, kept), everything in per.groupby(["setting", "kept"]):
        g = everything[everything["comparable"]].sort_values("attn_out_rel")
        other = everything[~everything["comparable"]]
        rk = spearman(g["k_rel_err_global"], g["attn_out_rel"])
        rv = spearman(g["v_rel_err_global"], g["attn_out_rel"])
        rd = spearman(g["dropped_mass"], g["attn_out_rel"])
        lines += [f"## {st}, {kept:.0%} kept", "",
                  f"rho(K, attn) = {rk:.2f}, rho(V, attn) = {rv:.2f}, rho(dropped mass, attn) = {rd:.2f}", "",
                  "| method | ratio | K err (rank) | V err (rank) | attn err (rank) | dropped mass (rank) |",
                  "|---|---|---|---|---|---|"]
        for _, x in g.iterrows():
            lines.append(f"| {x['label']} | {x['compression_ratio']:.2f} | "
                         f"{x['k_rel_err_global']:.3f} ({x['rank_k_rel_err_global']:.0f}) | "
                         f"{x['v_rel_err_global']:.3f} ({x['rank_v_rel_err_global']:.0f}) | "
                         f"{x['attn_out_rel']:.3f} ({x['rank_attn_out_rel']:.0f}) | "
                         f"{x['dropped_mass']:.3f} ({x['rank_dropped_mass']:.0f}) |")
        for _, x in other.iterrows():
            lines.append(f"| {x['label']} (other ratio, unranked) | {x['compression_ratio']:.2f} | "
                         f"{x['k_rel_err_global']:.3f} | {x['v_rel_err_global']:.3f} | {x['attn_out_rel']:.3f} | "
                         f"{x['dropped_mass']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--out")
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(a.results) / "figures"
    per = table(read_summary(Path(a.results)))
    written = plot(per, out)
    out.mkdir(parents=True, exist_ok=True)
    per.to_csv(out / "eviction_zoo_ranks.csv", index=False)
    (out / "eviction_zoo_ranks.md").write_text(ranks_md(per))
    written += [out / "eviction_zoo_ranks.csv", out / "eviction_zoo_ranks.md"]
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
