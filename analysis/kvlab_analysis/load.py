"""Read and validate a kvlab results folder, or `kvlab decode --csv` files.

A results folder (written by ``kvlab sweep`` / ``kvlab run --csv``) holds
``summary.csv`` (one row per job), ``layers.csv``, ``steps.csv``,
``timing.csv``, ``decode_steps.csv`` (only with a model in the loop) and
``config.resolved.yaml``.  ``summary.csv`` is mandatory; the other CSVs are
optional (the plots that need them are skipped).

Every CSV read is checked against ``results_schema.json`` (see
:mod:`.schema`): an unknown column, a missing required column or a value of
the wrong type is a :class:`ResultsError` naming the file and the column.
Without the schema file the loader falls back to a short list of the columns
the plots need.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .schema import SchemaError, Table, load_schema, validate

SUMMARY_FILE = "summary.csv"
LAYERS_FILE = "layers.csv"
STEPS_FILE = "steps.csv"
TIMING_FILE = "timing.csv"
DECODE_FILE = "decode_steps.csv"
CONFIG_FILE = "config.resolved.yaml"

# Used only when results_schema.json is absent: what the plots need.
FALLBACK_REQUIRED = {
    SUMMARY_FILE: ["job_id", "status", "error", "dump", "method", "family", "spec",
                   "compression_ratio", "bits_per_element", "k_rel_err_global",
                   "v_rel_err_global", "attn_out_rel", "attn_kl", "dropped_mass"],
    LAYERS_FILE: ["job_id", "spec", "dump", "layer", "kv_head", "tensor", "rel_err",
                  "attn_out_rel"],
    STEPS_FILE: ["job_id", "spec", "dump", "decode_step", "attn_out_rel", "attn_kl"],
    TIMING_FILE: ["job_id", "replay_cpu_s"],
    DECODE_FILE: ["compressor", "mode", "step", "kl", "top1_agree", "hidden_rel"],
}
TEXT_COLUMNS = {"job_id", "status", "error", "dump", "method", "family", "spec", "tensor",
                "compressor", "mode", "decode_mode"}
DECODE_HEADER = {"compressor", "mode", "step", "kl"}  # how a decode CSV is recognised


class ResultsError(Exception):
    """A results folder or CSV is missing or malformed (message is one line)."""


@dataclass
class Results:
    """The contents of one results folder.

    ``summary`` holds every job (ok and failed); ``ok`` only the successful
    ones; ``failed`` the failed ones.  ``layers``, ``steps`` and ``decode`` are
    restricted to successful jobs and are ``None`` when the file is absent.
    """

    folder: Path
    summary: pd.DataFrame
    ok: pd.DataFrame
    failed: pd.DataFrame
    layers: Optional[pd.DataFrame] = None
    steps: Optional[pd.DataFrame] = None
    timing: Optional[pd.DataFrame] = None
    decode: Optional[pd.DataFrame] = None
    config: dict = field(default_factory=dict)
    config_name: Optional[str] = None


def _typed(raw: pd.DataFrame, table: Optional[Table]) -> pd.DataFrame:
    """Numbers for the schema's int/float columns (blank -> NaN), text elsewhere.

    Columns the schema does not type (``param.*``, or everything without a
    schema) become numeric when every non-blank value is a number.
    """
    frame = raw.copy()
    for name in frame.columns:
        column = table.column(name) if table else None
        kind = column.type if column else ("string" if name in TEXT_COLUMNS else None)
        if kind == "string":
            continue
        numbers = pd.to_numeric(frame[name].where(frame[name].str.strip() != ""), errors="coerce")
        if kind is not None or numbers.notna().sum() == (frame[name].str.strip() != "").sum():
            frame[name] = numbers
    return frame


def read_table(path: Path, name: str, schema: Optional[dict[str, Table]] = None,
               exempt: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Read one CSV as table ``name`` of the schema, validate it and type its columns."""
    if not path.is_file():
        raise ResultsError(f"{path}: file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot parse CSV ({str(exc).splitlines()[0]})") from exc
    raw = _drop_duplicate_columns(raw, header, path)
    table = schema.get(name) if schema else None
    if table is not None:
        try:
            validate(raw, table, path, exempt)
        except SchemaError as exc:
            raise ResultsError(str(exc)) from exc
    else:
        missing = [c for c in FALLBACK_REQUIRED.get(name, [])
                   if c not in raw.columns and c not in exempt]
        if missing:
            raise ResultsError(f"{path}: missing required column(s): {', '.join(missing)}")
    return _typed(raw, table)


def _drop_duplicate_columns(raw: pd.DataFrame, header: list[str], path: Path) -> pd.DataFrame:
    """Keep the first of columns that share a name (pandas renames the others
    ``name.1``...), with a warning naming the file and the column."""
    seen: set[str] = set()
    drop = []
    for position, name in enumerate(header):
        if name in seen:
            print(f"warning: {path}: column {name!r} appears twice; the second is ignored",
                  file=sys.stderr)
            drop.append(raw.columns[position])
        seen.add(name)
    return raw.drop(columns=drop)


def _schema() -> Optional[dict[str, Table]]:
    try:
        return load_schema()
    except SchemaError as exc:
        raise ResultsError(str(exc)) from exc


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        import yaml  # Debian's python3-yaml; the config is informative only
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else {}
    except Exception:  # noqa: BLE001  (a broken config must not stop the plots)
        return {}


def _optional_table(folder: Path, name: str, schema, ok_ids: set[str]) -> Optional[pd.DataFrame]:
    path = folder / name
    if not path.is_file():
        return None
    frame = read_table(path, name, schema)
    if "job_id" in frame.columns:
        frame = frame[frame["job_id"].isin(ok_ids)]
    return frame.reset_index(drop=True)


def load_results(folder: str | Path) -> Results:
    """Load a results folder; raise :class:`ResultsError` if it is unusable."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultsError(f"{folder}: results folder does not exist")
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a directory")
    schema = _schema()
    summary = read_table(folder / SUMMARY_FILE, SUMMARY_FILE, schema)
    status = summary["status"].str.strip().str.lower()
    ok = summary[status == "ok"].reset_index(drop=True)
    failed = summary[status != "ok"].reset_index(drop=True)
    ok_ids = set(ok["job_id"])
    decode = _optional_table(folder, DECODE_FILE, schema, ok_ids)
    if decode is not None:
        decode = _with_method(decode, ok)
    config = folder / CONFIG_FILE
    return Results(
        folder=folder, summary=summary, ok=ok, failed=failed,
        layers=_optional_table(folder, LAYERS_FILE, schema, ok_ids),
        steps=_optional_table(folder, STEPS_FILE, schema, ok_ids),
        timing=_optional_table(folder, TIMING_FILE, schema, ok_ids),
        decode=decode,
        config=_read_config(config),
        config_name=config.name if config.is_file() else None,
    )


def _with_method(decode: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Add ``spec``, ``method`` and ``family`` of each decode row's job."""
    jobs = ok.set_index("job_id")[["spec", "method", "family"]]
    return decode.join(jobs, on="job_id")


# ------------------------------------------------------------ kvlab decode --csv


def is_decode_csv(path: Path) -> bool:
    """True for a CSV whose header has the columns of `kvlab decode --csv`."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return DECODE_HEADER <= {name.strip() for name in header.strip().split(",")}


def decode_csv_files(inputs: list[Path]) -> list[Path]:
    """Decode CSVs among ``inputs`` (files, or folders searched one level deep)."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files += [p for p in sorted(item.glob("*.csv")) if is_decode_csv(p)]
        elif item.is_file():
            if not is_decode_csv(item):
                raise ResultsError(f"{item}: not a kvlab decode CSV (no compressor/mode/step/kl "
                                   "columns)")
            files.append(item)
        else:
            raise ResultsError(f"{item}: no such file or folder")
    return files


def load_decode_csvs(files: list[Path]) -> pd.DataFrame:
    """Concatenate `kvlab decode --csv` files (or sweep decode_steps.csv files).

    Each run is identified by ``job_id`` (the file name when the CSV has none)
    and keeps its ``dump`` (blank when unknown).
    """
    schema = _schema()
    frames = []
    for path in files:
        frame = read_table(path, DECODE_FILE, schema, exempt=frozenset({"job_id", "dump"}))
        if "job_id" not in frame.columns:
            frame.insert(0, "job_id", path.stem)
        if "dump" not in frame.columns:
            frame.insert(1, "dump", "")
        frames.append(frame)
    if not frames:
        raise ResultsError("no decode CSVs found")
    decode = pd.concat(frames, ignore_index=True)
    decode["spec"] = decode["compressor"]
    decode["method"] = decode["compressor"].str.split(":").str[0]
    return decode
