#!/usr/bin/env python3
"""Compresses one layer of the bundled dump (read with h5py) by several
methods with kvlab.compress() and prints each one's error and exact size.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/compress_layer.py [LAYER]
"""

import sys
from pathlib import Path

import h5py
import numpy as np

import kvlab

ROOT = Path(__file__).resolve().parents[2]
layer = int(sys.argv[1]) if len(sys.argv) > 1 else 1

with h5py.File(ROOT / "data" / "shakespeare-a.kvdump.h5", "r") as f:
    keys = f[f"layers/{layer}/keys"][...].astype(np.float32)        # [kv_heads, T, d]
    values = f[f"layers/{layer}/values"][...].astype(np.float32)
    queries = f[f"layers/{layer}/queries"][...].astype(np.float32)  # [heads, T, d]
    prompt_len = int(f.attrs["prompt_len"])
    num_layers = int(f.attrs["num_layers"])
    rope = dict(rope_theta=float(f.attrs["rope_theta"]), rope_style=str(f.attrs["rope_style"]))


def rel(x, x_hat):
    return np.linalg.norm(x - x_hat) / np.linalg.norm(x)


print(f"layer {layer}: keys {keys.shape}, prompt {prompt_len} + {keys.shape[1] - prompt_len} decode steps")
print(f"{'spec':18} {'ratio':>6} {'K rel':>7} {'V rel':>7} {'kept':>6}")
for spec in ["kivi-2bit", "kivi-4bit", "gear-2bit", "qjl-256", "h2o-20pct", "kvquant-nuq3-1pct"]:
    r = kvlab.compress(spec, keys, values, prompt_len, queries, layer=layer, num_layers=num_layers, **rope)
    k_err = "n/a" if r.keys is None else f"{rel(keys, r.keys):.4f}"
    print(f"{spec:18} {r.compression_ratio:6.2f} {k_err:>7} {rel(values, r.values):7.4f} {r.present.mean():6.1%}")
