"""Names and axis labels of the metrics the analysis works with."""

from __future__ import annotations

import pandas as pd

RATIO = "compression_ratio"
BITS = "bits_per_element"

# Error metrics of summary.csv used for the Pareto plot and the budget tables,
# with a human-readable label (lower is better for all of them).
ERROR_METRICS = {
    "attn_out_rel": "attention-output relative error",
    "k_rel_err_global": "K relative Frobenius error",
    "v_rel_err_global": "V relative Frobenius error",
}
MAIN_METRIC = "attn_out_rel"

RATIO_LABEL = "compression ratio (× vs FP16)"
BITS_LABEL = "bits per element"
STEP_LABEL = "decode step"
REL_ERR_LABEL = "relative Frobenius error"
ATTN_OUT_LABEL = "attention-output relative error"
DROPPED_LABEL = "dropped attention mass"

# KL on the plots: the reverse KL reflects evicted tokens; the forward one
# (over kept tokens, renormalised) is ~0 for a pure dropper.
KL_REVERSE = "attn_kl_rev"
KL_FORWARD = "attn_kl"
KL_REVERSE_LABEL = "attention KL(p̂ ‖ p), nats"
KL_FORWARD_LABEL = "KL(p′ ‖ p̂) over kept tokens, nats"
KL_FLOOR = 1e-6  # the forward-KL fallback axis starts here
KL_FLOOR_NOTE = ("KL over kept tokens: token droppers' values (~0) are drawn at the floor "
                 f"{KL_FLOOR:g}; their loss shows in the dropped mass")
KL_DROP_COLUMN_NOTE = ("KL over kept tokens is ~0 for token droppers, so their column shows the "
                       "attention mass they dropped instead")

FAMILIES = ["baseline", "quant", "gear", "drop", "composite"]


def short_label(metric: str) -> str:
    """A compact label for a metric column (falls back to the column name)."""
    return ERROR_METRICS.get(metric, metric)


def kl_column(frame: pd.DataFrame) -> tuple[str, str, bool]:
    """(column, axis label, floored?) of the KL to plot from ``frame``.

    The reverse KL when kvlab wrote it (it reflects dropped mass), otherwise
    the forward KL on an axis floored at :data:`KL_FLOOR`.
    """
    if KL_REVERSE in frame.columns and frame[KL_REVERSE].notna().any():
        return KL_REVERSE, KL_REVERSE_LABEL, False
    return KL_FORWARD, KL_FORWARD_LABEL, True
