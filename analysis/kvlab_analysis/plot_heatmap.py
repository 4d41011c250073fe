"""Per-layer heatmaps: K and V relative error and attention-output error, layer × kv head.

One file per chosen configuration and dump, ``heatmap_<label>_<dump>.png``.
Every heatmap of a run uses the same colour scale per metric (K and V share
one: both are relative Frobenius errors; attention-output error has its
own), so files can be compared side by side.  The configurations are the
user's (``--heatmap SPEC``: a canonical spec, a label or a preset name) or,
by default, the best of each method family by attention-output error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from . import style
from .encoding import Encoding
from .figure import Figure, slug
from .metrics import MAIN_METRIC

plt = style.plt
CMAP = "viridis"  # perceptually uniform and colour-blind safe


class HeatmapChoiceError(ValueError):
    """A --heatmap value that matches no configuration (message lists the labels)."""


def default_choice(configs: pd.DataFrame) -> list[str]:
    """The best configuration (lowest attention-output error, else V error) of each family."""
    chosen = []
    for family, part in configs[configs["family"] != "baseline"].groupby("family", sort=False):
        key = MAIN_METRIC if part[MAIN_METRIC].notna().any() else "v_rel_err_global"
        best = part.sort_values([key, "spec"], na_position="last").iloc[0]
        chosen.append(best["spec"])
    order = {f: i for i, f in enumerate(style.FAMILY_ORDER)}
    families = configs.set_index("spec")["family"]
    return sorted(chosen, key=lambda s: order.get(families[s], len(order)))


def resolve_choice(wanted: list[str], specs: list[str], enc: Encoding) -> list[str]:
    """Specs for ``--heatmap`` values: an exact spec, a label, or a preset name."""
    by_label = {enc.label(s): s for s in specs}
    chosen = []
    for item in wanted:
        if item in specs:
            chosen.append(item)
        elif item in by_label:
            chosen.append(by_label[item])
        else:
            known = ", ".join(sorted(by_label))
            raise HeatmapChoiceError(f"--heatmap {item!r}: no such configuration in these results "
                                     f"(labels: {known})")
    return list(dict.fromkeys(chosen))


@dataclass
class Scales:
    kv: Normalize
    attn: Normalize


def _matrix(layers: pd.DataFrame, tensor: str, value: str) -> pd.DataFrame:
    part = layers[layers["tensor"] == tensor]
    return part.pivot_table(index="layer", columns="kv_head", values=value, aggfunc="mean",
                            dropna=False).sort_index().sort_index(axis=1)


def common_scales(layers: pd.DataFrame) -> Scales:
    """One scale per metric over every chosen job (0 to the largest value)."""
    kv = layers["rel_err"].max(skipna=True)
    attn = layers.loc[layers["tensor"] == "K", "attn_out_rel"].max(skipna=True)
    return Scales(Normalize(0, kv if np.isfinite(kv) and kv > 0 else 1),
                  Normalize(0, attn if np.isfinite(attn) and attn > 0 else 1))


def _panel(fig, ax, matrix: pd.DataFrame, title: str, norm: Normalize, colorbar_label: str,
           empty_note: str) -> Optional[object]:
    ax.grid(False)
    ax.set_title(title)
    ax.set_xlabel("KV head")
    ax.set_ylabel("layer")
    if matrix.empty or matrix.isna().all().all():
        ax.text(0.5, 0.5, empty_note, transform=ax.transAxes, ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        return None
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap=CMAP, norm=norm,
                      origin="lower", interpolation="nearest")
    n_layers, n_heads = values.shape
    ax.set_xticks(range(n_heads), [str(h) for h in matrix.columns])
    step = max(1, n_layers // 16)
    ax.set_yticks(range(0, n_layers, step), [str(layer) for layer in matrix.index[::step]])
    if values.size <= 64:
        middle = (norm.vmin + norm.vmax) / 2
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                        color="black" if value > middle else "white")
    return image


def plot_heatmap(layers: pd.DataFrame, spec: str, dump: str, enc: Encoding, scales: Scales,
                 out_dir: Path) -> Figure:
    """K, V and attention-output error (layer × kv head) of one configuration on one dump."""
    job = layers[(layers["spec"] == spec) & (layers["dump"] == dump)]
    label = enc.label(spec)
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.9), layout="constrained")
    k = _panel(fig, axes[0], _matrix(job, "K", "rel_err"), "K relative error", scales.kv,
               "relative Frobenius error", "K not reconstructible\n(no error recorded)")
    v = _panel(fig, axes[1], _matrix(job, "V", "rel_err"), "V relative error", scales.kv,
               "relative Frobenius error", "no V error recorded")
    a = _panel(fig, axes[2], _matrix(job, "K", "attn_out_rel"), "attention-output relative error",
               scales.attn, "", "no attention metrics\n(dump without queries?)")
    if k is not None or v is not None:
        fig.colorbar(k or v, ax=axes[:2].tolist(), label="relative Frobenius error (K and V)",
                     shrink=0.9)
    if a is not None:
        fig.colorbar(a, ax=axes[2], label="attention-output rel. error", shrink=0.9)
    dump_name = Path(dump).name
    fig.suptitle(f"{label} on {dump_name}: error per layer and KV head "
                 "(same colour scales in every heatmap of this report)")
    stem = f"heatmap_{slug(label)}_{slug(dump_stem(dump_name))}"
    caption = (f"{label} on {dump_name}: relative Frobenius error of K and V and the "
               f"attention-output relative error per (layer, KV head); colour scales are shared "
               f"by all heatmaps of these results (K/V 0–{scales.kv.vmax:.3g}, attention "
               f"0–{scales.attn.vmax:.3g}).")
    return Figure(stem, f"Per-layer error: {label}, {dump_name}", caption,
                  style.save_figure(fig, out_dir, stem))


def dump_stem(name: str) -> str:
    """``shakespeare-a.kvdump.h5`` -> ``shakespeare-a``."""
    for suffix in (".h5", ".hdf5", ".kvdump"):
        name = name.removesuffix(suffix)
    return name


def plot_heatmaps(layers: pd.DataFrame, specs: list[str], enc: Encoding,
                  out_dir: Path) -> list[Figure]:
    chosen = layers[layers["spec"].isin(specs)]
    scales = common_scales(chosen)
    figures = []
    for spec in specs:
        for dump in sorted(chosen.loc[chosen["spec"] == spec, "dump"].unique()):
            figures.append(plot_heatmap(chosen, spec, dump, enc, scales, out_dir))
    return figures
