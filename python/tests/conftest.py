"""Shared fixtures: the repository, the kvlab binary (KVLAB_BIN, set by ctest)
for comparisons with the CLI, the bundled dump, and a kvdump writer."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("KVLAB_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUNDLED_DUMP = ROOT / "data" / "shakespeare-a.kvdump.h5"
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture(scope="session")
def kvlab_bin():
    path = os.environ.get("KVLAB_BIN")
    if not path or not Path(path).is_file():
        pytest.skip("KVLAB_BIN is not set to the kvlab executable (ctest sets it)")
    return path


def run_cli(kvlab_bin, *args, check=True):
    """Runs the kvlab executable; returns the CompletedProcess."""
    p = subprocess.run([kvlab_bin, "--quiet", *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"kvlab {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def read_csv_text(path):
    """A CSV file as (header, rows of strings): no type guessing, every digit kept."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write_dump(path, keys, values, queries=None, *, prompt_len, rope_theta=None, rope_style=None):
    """One-layer (or list-of-layers) float32 kvdump via tools/kvdump.py."""
    from kvdump import write_kvdump

    as_list = (lambda x: x if isinstance(x, list) else [x])
    write_kvdump(str(path), as_list(keys), as_list(values), None if queries is None else as_list(queries),
                 prompt_len=prompt_len, rope_theta=rope_theta, rope_style=rope_style, dtype="float32")
    return path


def random_layer(kv_heads=2, query_heads=4, tokens=96, head_dim=32, seed=0):
    """Gaussian keys with a few large channels (as RoPE models have), values, queries."""
    rng = np.random.default_rng(seed)
    scale = np.ones(head_dim, dtype=np.float32)
    scale[3::11] = 6.0
    k = (rng.standard_normal((kv_heads, tokens, head_dim)) * scale).astype(np.float32)
    v = rng.standard_normal((kv_heads, tokens, head_dim)).astype(np.float32)
    q = (rng.standard_normal((query_heads, tokens, head_dim)) * scale).astype(np.float32)
    return k, v, q
