"""The machine-readable schema of kvlab's result CSVs (results_schema.json).

The file is generated from the C++ field list (``kvlab schema --json``) and
committed next to this module.  Its shape::

    {"schema_version": 1,
     "tables": {"summary.csv": {"description": str,
                                "columns": [{"name", "type", "unit", "meaning"}, ...],
                                "dynamic_prefixes": ["param."]}, ...}}

``type`` is ``string``, ``int`` or ``float``.  A column is required unless it
says ``"model_only": true`` (written only with a model in the loop), or
``"optional": true`` / ``"required": false``.  Extra keys anywhere are
ignored, so the generator may add more.  Blank cells are allowed in every
column (kvlab writes NaN and "not applicable" as blanks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

SCHEMA_PATH = Path(__file__).resolve().parent / "results_schema.json"
TYPES = ("string", "int", "float")


class SchemaError(Exception):
    """The schema file itself is malformed, or a CSV does not match it (one line)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    unit: str
    meaning: str
    required: bool


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    dynamic_prefixes: tuple[str, ...]

    def column(self, name: str) -> Optional[Column]:
        return next((c for c in self.columns if c.name == name), None)

    def is_dynamic(self, name: str) -> bool:
        return any(name.startswith(prefix) for prefix in self.dynamic_prefixes)


def _parse_column(entry: dict, where: str) -> Column:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise SchemaError(f"{where}: every column needs a string 'name'")
    kind = entry.get("type")
    if kind not in TYPES:
        raise SchemaError(f"{where}: column {entry['name']!r} has type {kind!r} "
                          f"(want one of {', '.join(TYPES)})")
    required = (not entry.get("optional", False) and not entry.get("model_only", False)
                and entry.get("required", True))
    return Column(entry["name"], kind, str(entry.get("unit", "")), str(entry.get("meaning", "")),
                  bool(required))


def parse_schema(document: dict, where: str = "results schema") -> dict[str, Table]:
    """Tables of a schema document (already decoded JSON)."""
    if not isinstance(document, dict) or not isinstance(document.get("tables"), dict):
        raise SchemaError(f"{where}: no 'tables' object")
    tables = {}
    for name, body in document["tables"].items():
        if not isinstance(body, dict) or not isinstance(body.get("columns"), list):
            raise SchemaError(f"{where}: table {name!r} has no 'columns' list")
        columns = tuple(_parse_column(c, f"{where}: table {name!r}") for c in body["columns"])
        prefixes = tuple(str(p) for p in body.get("dynamic_prefixes", []) or [])
        tables[name] = Table(name, str(body.get("description", "")), columns, prefixes)
    return tables


def load_schema(path: Path = SCHEMA_PATH) -> Optional[dict[str, Table]]:
    """The committed schema, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc})") from exc
    return parse_schema(document, str(path))


def _bad_value(values: pd.Series, kind: str) -> Optional[str]:
    """The first non-blank value that is not of ``kind``, or None."""
    text = values.astype(str).str.strip()
    nonblank = text != ""
    if kind == "int":
        bad = nonblank & ~text.str.fullmatch(r"[+-]?\d+")
    else:
        numbers = pd.to_numeric(text.where(nonblank), errors="coerce")
        bad = nonblank & numbers.isna() & (text.str.lower() != "nan")
    return str(text[bad].iloc[0]) if bad.any() else None


def validate(raw: pd.DataFrame, table: Table, path: Path,
             exempt: frozenset[str] = frozenset()) -> None:
    """Check a CSV read as text (``dtype=str``, blanks as "") against ``table``.

    Raises :class:`SchemaError` naming the file and the column for an unknown
    column, a missing required one (unless in ``exempt``) or a value of the
    wrong type.
    """
    for name in raw.columns:
        if table.column(name) is None and not table.is_dynamic(name):
            raise SchemaError(f"{path}: unknown column {name!r} (not in the {table.name} schema; "
                              f"is analysis/kvlab_analysis/results_schema.json up to date?)")
    missing = [c.name for c in table.columns
               if c.required and c.name not in raw.columns and c.name not in exempt]
    if missing:
        raise SchemaError(f"{path}: missing required column(s): {', '.join(missing)}")
    for column in table.columns:
        if column.type == "string" or column.name not in raw.columns:
            continue
        bad = _bad_value(raw[column.name], column.type)
        if bad is not None:
            raise SchemaError(f"{path}: column {column.name!r} should hold {column.type} values, "
                              f"found {bad!r}")
