"""A one-paragraph plain-text summary of what the results show, computed from the numbers.

Each sentence is produced only when its data exists: the runs, the lowest
attention error and the best per bit budget, the Pareto front, what each
ablated parameter buys (mean relative change from its smallest to its
largest value, others fixed), how error moves over decoding, the droppers'
lost attention mass, and the model-in-the-loop comparison.
"""

from __future__ import annotations

import math
import textwrap
from typing import Optional

import numpy as np
import pandas as pd

from .ablation import Series
from .encoding import Encoding, dim_name, dim_value
from .metrics import BITS, MAIN_METRIC, RATIO
from .pareto import pareto_front


def _num(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _runs(results, configs: pd.DataFrame) -> str:
    methods = configs["method"].nunique()
    dumps = results.summary["dump"].nunique()
    failed = len(results.failed)
    text = (f"{len(configs)} configuration(s) of {methods} method(s) ran on {dumps} dump(s)"
            f" ({len(results.ok)} job(s) ok")
    return text + (f", {failed} failed)." if failed else ").")


def _best(configs: pd.DataFrame, enc: Encoding) -> Optional[str]:
    ranked = configs[(configs["family"] != "baseline") & configs[MAIN_METRIC].notna()]
    if ranked.empty:
        return None
    best = ranked.sort_values([MAIN_METRIC, BITS]).iloc[0]
    worst = ranked.sort_values([MAIN_METRIC, BITS]).iloc[-1]
    text = (f"The lowest attention-output error is {enc.label(best['spec'])}'s "
            f"({_num(best[MAIN_METRIC])} at {best[RATIO]:.3g}× compression, "
            f"{best[BITS]:.3g} bits/element)")
    if len(ranked) > 2:
        text += (f"; the highest is {enc.label(worst['spec'])}'s ({_num(worst[MAIN_METRIC])} at "
                 f"{worst[RATIO]:.3g}×)")
    return text + "."


def _budgets(table: pd.DataFrame, enc: Encoding) -> Optional[str]:
    part = table[(table["metric"] == MAIN_METRIC) & (table["spec"] != "")]
    part = part[part["budget"] < 16]
    if part.empty:
        return None
    items, previous = [], None
    for _, row in part.iterrows():
        if row["spec"] == previous:
            continue
        previous = row["spec"]
        items.append(f"≤ {row['budget']:g} bits/element: {enc.label(row['spec'])} "
                     f"({_num(row['error'])})")
    return "Best attention-output error within a budget: " + "; ".join(items) + "."


def _front(configs: pd.DataFrame, enc: Encoding) -> Optional[str]:
    front = pareto_front(configs[configs[MAIN_METRIC] > 0], MAIN_METRIC)
    if len(front) < 2:
        return None
    members = [f"{enc.label(r['spec'])} ({r[RATIO]:.3g}×, {_num(r[MAIN_METRIC])})"
               for _, r in front.iterrows()]
    if len(members) > 6:
        members = members[:3] + ["…"] + members[-2:]
    return ("Trading size for attention error, the Pareto front runs through "
            + ", ".join(members) + ".")


def dimension_effects(configs: pd.DataFrame, enc: Encoding, series: Series) -> list[dict]:
    """For each dimension: mean relative change of the main metric and mean bits added,
    from its smallest to its largest value with the other dimensions fixed."""
    parsed = enc.structure.parsed
    rows = configs[configs["spec"].isin(series.specs)].set_index("spec")
    effects = []
    for d, dim in enumerate(series.dims):
        others = [o for i, o in enumerate(series.dims) if i != d]
        key = pd.Series([repr(tuple(o.value(parsed[s]) for o in others)) for s in rows.index],
                        index=rows.index)
        low_v, high_v = dim.values[0], dim.values[-1]
        changes, costs = [], []
        for _, group in rows.groupby(key):
            values = group.index.map(lambda s: dim.value(parsed[s]))
            low = group[np.asarray(values) == low_v]
            high = group[np.asarray(values) == high_v]
            if len(low) and len(high) and low[MAIN_METRIC].iloc[0] > 0:
                changes.append(high[MAIN_METRIC].iloc[0] / low[MAIN_METRIC].iloc[0] - 1)
                costs.append(high[BITS].iloc[0] - low[BITS].iloc[0])
        if changes:
            effects.append({"dim": dim, "low": low_v, "high": high_v,
                            "change": float(np.mean(changes)), "bits": float(np.mean(costs)),
                            "n": len(changes)})
    return effects


def _ablations(configs: pd.DataFrame, enc: Encoding) -> list[str]:
    sentences = []
    for series in enc.structure.series.values():
        if len(series.specs) < 3 or not series.dims:
            continue
        effects = dimension_effects(configs, enc, series)
        if not effects:
            continue
        parts = [f"raising {dim_name(e['dim'])} from {dim_value(e['dim'], e['low'])}"
                 f" to {dim_value(e['dim'], e['high'])} changes attention "
                 f"error by {e['change'] * 100:+.0f} % ({e['bits']:+.2f} bits/element"
                 + (f", mean of {e['n']} settings" if e["n"] > 1 else "") + ")" for e in effects]
        sentences.append(f"{enc.series_label(series)}: " + "; ".join(parts) + ".")
    return sentences


def _drift(steps: Optional[pd.DataFrame], enc: Encoding) -> Optional[str]:
    if steps is None or steps.empty or steps["decode_step"].nunique() < 5:
        return None
    steps = steps[steps["spec"].map(enc.family) != "baseline"]
    curves = steps.groupby(["spec", "decode_step"])[MAIN_METRIC].mean().reset_index()
    last = curves["decode_step"].max()
    early = curves[curves["decode_step"] <= 0.2 * last].groupby("spec")[MAIN_METRIC].mean()
    late = curves[curves["decode_step"] >= 0.8 * last].groupby("spec")[MAIN_METRIC].mean()
    ratio = (late / early).replace([np.inf, -np.inf], np.nan).dropna()
    ratio = ratio[early.reindex(ratio.index) > 0]
    if ratio.empty:
        return None
    grow, flat = ratio.idxmax(), (ratio - 1).abs().idxmin()
    text = (f"Over decoding (mean of the first vs the last fifth of {int(last)} steps), "
            f"attention error grows most for {enc.label(grow)} ({_num(early[grow])} → "
            f"{_num(late[grow])})")
    if flat != grow:
        text += (f" and is flattest for {enc.label(flat)} ({_num(early[flat])} → "
                 f"{_num(late[flat])})")
    falls = ratio.idxmin()
    if ratio[falls] < 0.8 and falls not in (grow, flat):
        text += f"; it falls for {enc.label(falls)} ({_num(early[falls])} → {_num(late[falls])})"
    return text + "."


def _dropped(configs: pd.DataFrame, enc: Encoding) -> Optional[str]:
    drop = configs[configs["dropped_mass"] > 0]
    if drop.empty:
        return None
    low = drop.loc[drop["dropped_mass"].idxmin()]
    high = drop.loc[drop["dropped_mass"].idxmax()]
    if low["spec"] == high["spec"]:
        return (f"{enc.label(low['spec'])} evicts tokens holding {low['dropped_mass']:.1%} of the "
                "reference attention on average.")
    return (f"Token droppers evict tokens holding {low['dropped_mass']:.1%} "
            f"({enc.label(low['spec'])}) to {high['dropped_mass']:.1%} "
            f"({enc.label(high['spec'])}) of the reference attention on average.")


def _decode(decode: Optional[pd.DataFrame], enc: Encoding) -> Optional[str]:
    if decode is None or decode.empty:
        return None
    teacher = decode[decode["mode"] == "teacher"]
    if teacher.empty:
        return None
    per_run = teacher.groupby(["spec", "job_id"]).agg(
        kl=("kl", "mean"), top1=("top1_agree", "mean"),
        ppl=("ce_comp", "mean"), ref=("ce_ref", "mean"))
    per_run["ppl"] = np.exp(per_run["ppl"] - per_run["ref"])
    per_spec = per_run.groupby("spec")[["kl", "top1", "ppl"]].mean()
    per_spec = per_spec[per_spec["kl"] > 0]
    if per_spec.empty:
        return None
    best, worst = per_spec["kl"].idxmin(), per_spec["kl"].idxmax()
    def fmt(spec: str) -> str:
        row = per_spec.loc[spec]
        return (f"mean next-token KL {_num(row['kl'])}, top-1 agreement {row['top1']:.3f}, "
                f"perplexity ratio {row['ppl']:.4g}")

    text = (f"With the model in the loop (teacher-forced), {enc.label(best)} stays closest "
            f"({fmt(best)})")
    if worst != best:
        text += f" and {enc.label(worst)} drifts furthest ({fmt(worst)})"
    return text + "."


def summarize(results, configs: pd.DataFrame, enc: Encoding, budget_table: pd.DataFrame,
              steps: Optional[pd.DataFrame], decode: Optional[pd.DataFrame]) -> str:
    """The paragraph (unwrapped)."""
    sentences = [_runs(results, configs), _best(configs, enc), _budgets(budget_table, enc),
                 _front(configs, enc), *_ablations(configs, enc), _drift(steps, enc),
                 _dropped(configs, enc), _decode(decode, enc)]
    return " ".join(s for s in sentences if s)


def summarize_decode(decode: pd.DataFrame, enc: Encoding) -> str:
    runs = decode.groupby(["job_id", "mode"]).ngroups
    text = f"{decode['spec'].nunique()} compressor(s), {runs} decode run(s)."
    return " ".join(s for s in [text, _decode(decode, enc)] if s)


def wrap(paragraph: str, width: int = 100) -> str:
    return textwrap.fill(paragraph, width=width, break_on_hyphens=False)
