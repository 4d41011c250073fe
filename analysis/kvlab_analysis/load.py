"""Read and validate a kvlab results folder.

A results folder (written by ``kvlab sweep`` / ``kvlab run``) holds
``summary.csv`` (one row per job), ``layers.csv`` (one row per job, layer,
kv head and tensor), ``steps.csv`` (one row per job and evaluated position)
and ``config.resolved.yaml``.  ``summary.csv`` is mandatory; the other CSVs
are optional (the plots that need them are skipped), but when present they
must carry their required columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

SUMMARY_FILE = "summary.csv"
LAYERS_FILE = "layers.csv"
STEPS_FILE = "steps.csv"
CONFIG_FILE = "config.resolved.yaml"

SUMMARY_REQUIRED = [
    "job_id", "status", "error", "dump", "method", "family", "spec",
    "layers", "kv_heads", "tokens", "prompt_len", "decode_steps", "eval_points",
    "baseline_bits", "compressed_bits", "compression_ratio", "bits_per_element",
    "k_rel_err_mean", "k_rel_err_global", "k_max_abs_err",
    "v_rel_err_mean", "v_rel_err_global", "v_max_abs_err",
    "attn_out_rel", "attn_kl", "dropped_mass",
]
LAYERS_REQUIRED = [
    "job_id", "method", "spec", "dump", "layer", "kv_head", "tensor",
    "rel_err", "max_abs_err", "sq_err", "sq_norm",
    "attn_out_rel", "attn_kl", "dropped_mass",
]
STEPS_REQUIRED = [
    "job_id", "method", "spec", "dump", "position", "decode_step", "tokens",
    "attn_out_rel", "attn_kl", "dropped_mass", "k_rel_err", "v_rel_err",
    "compression_ratio",
]

# Columns that hold text; everything else in the required lists is numeric.
TEXT_COLUMNS = {"job_id", "status", "error", "dump", "method", "family", "spec", "tensor"}


class ResultsError(Exception):
    """A results folder is missing or malformed (message is one line)."""


@dataclass
class Results:
    """The contents of one results folder.

    ``summary`` holds every job (ok and failed); ``ok`` only the successful
    ones; ``failed`` the failed ones.  ``layers`` and ``steps`` are restricted
    to successful jobs and are ``None`` when the file is absent.
    """

    folder: Path
    summary: pd.DataFrame
    ok: pd.DataFrame
    failed: pd.DataFrame
    layers: Optional[pd.DataFrame]
    steps: Optional[pd.DataFrame]
    config_name: Optional[str]


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """Read one CSV, check its required columns and coerce numeric columns.

    Unknown extra columns are kept untouched.  Blank cells become NaN.
    """
    if not path.is_file():
        raise ResultsError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: missing required column(s): {', '.join(missing)}")
    numeric = [c for c in frame.columns
               if c not in TEXT_COLUMNS and (c in required or c.startswith("param.")
                                             or c.startswith("bits_"))]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in TEXT_COLUMNS & set(frame.columns):
        frame[column] = frame[column].fillna("")
    return frame


def _optional_table(path: Path, required: list[str], ok_ids: set[str]) -> Optional[pd.DataFrame]:
    if not path.is_file():
        return None
    frame = read_table(path, required)
    return frame[frame["job_id"].isin(ok_ids)].reset_index(drop=True)


def load_results(folder: str | Path) -> Results:
    """Load a results folder; raise :class:`ResultsError` if it is unusable."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultsError(f"{folder}: results folder does not exist")
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a directory")
    summary = read_table(folder / SUMMARY_FILE, SUMMARY_REQUIRED)
    status = summary["status"].str.strip().str.lower()
    ok = summary[status == "ok"].reset_index(drop=True)
    failed = summary[status != "ok"].reset_index(drop=True)
    ok_ids = set(ok["job_id"])
    config = folder / CONFIG_FILE
    return Results(
        folder=folder,
        summary=summary,
        ok=ok,
        failed=failed,
        layers=_optional_table(folder / LAYERS_FILE, LAYERS_REQUIRED, ok_ids),
        steps=_optional_table(folder / STEPS_FILE, STEPS_REQUIRED, ok_ids),
        config_name=config.name if config.is_file() else None,
    )
