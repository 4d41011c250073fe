"""Names and axis labels of the metrics the analysis works with."""

RATIO = "compression_ratio"
BITS = "bits_per_element"

# Error metrics of summary.csv used for the Pareto plot and the budget tables,
# with a human-readable label (lower is better for all of them).
ERROR_METRICS = {
    "k_rel_err_global": "K relative Frobenius error",
    "v_rel_err_global": "V relative Frobenius error",
    "attn_out_rel": "attention-output relative error",
}

RATIO_LABEL = "compression ratio (× vs FP16)"
BITS_LABEL = "bits per element"
STEP_LABEL = "decode step"
REL_ERR_LABEL = "relative Frobenius error"
ATTN_OUT_LABEL = "attention-output relative error"
ATTN_KL_LABEL = "attention KL divergence (nats)"

FAMILIES = ["baseline", "quant", "gear", "drop", "composite"]


def short_label(metric: str) -> str:
    """A compact label for a metric column (falls back to the column name)."""
    return ERROR_METRICS.get(metric, metric)
