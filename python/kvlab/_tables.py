"""run(): a replay of a dump as pandas DataFrames with the CLI's columns."""

from __future__ import annotations

from . import _kvlab

TABLES = ("summary", "layers", "steps", "timing")


def _frame(table):
    """A DataFrame from the binding's typed columns: float -> float64 (NaN
    where the CSV cell is empty), int -> int64 (pandas Int64 when a cell is
    empty), string -> object (None where empty)."""
    import numpy as np
    import pandas as pd

    data = {}
    for name, kind, values in zip(table["columns"], table["types"], table["data"]):
        if kind == "float":
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif kind == "int":
            data[name] = (pd.array(values, dtype="Int64") if any(v is None for v in values)
                          else np.array(values, dtype=np.int64))
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=list(table["columns"]))


def run(dump, specs, layers=None, eval_every=None, threads=None, seed=0, *, max_steps=None, attention=True,
        tables="summary"):
    """Replays `dump` through each spec, as `kvlab run -d DUMP -c SPEC ... --csv DIR`.

    specs: a spec/preset or a list of them. layers: layer indices (default all).
    eval_every: evaluate every k-th decode step (default 1; 0: after prefill and
    at the last step). threads: default all cores (results do not depend on it).
    max_steps: replay at most this many decode steps. attention: attention
    metrics when the dump records queries.

    tables: "summary" (default) returns summary.csv as a DataFrame; a list such
    as ["summary", "layers", "steps", "timing"] returns a dict of DataFrames.
    Columns, types and numbers are those of the CLI's CSV files (docs/outputs.md).
    Raises ValueError for a bad spec, parameter or argument, OSError when the
    dump cannot be read.
    """
    single = isinstance(tables, str)
    names = [tables] if single else list(tables)
    if isinstance(specs, str):
        specs = [specs]
    if layers is not None:
        layers = [int(layers)] if isinstance(layers, int) else [int(layer) for layer in layers]
    raw = _kvlab.run(dump, list(specs), layers, eval_every, threads, seed, max_steps=max_steps,
                     attention=attention, tables=names)
    frames = {name: _frame(raw[name]) for name in names}
    return frames[names[0]] if single else frames
