#!/usr/bin/env python3
"""Write tiny synthetic kvdumps that carry every optional attention attribute
of docs/dump-format.md, with NumPy reference values for kvlab's C++ tests.

    /usr/bin/python3 tools/make_attention_fixtures.py --out DIR [--seed 0]

writes DIR/attention-neox.kvdump.h5 and DIR/attention-gptj.kvdump.h5 (NumPy +
h5py only; deterministic for a seed; about 50 KB each). Each dump has 4
layers, 4 query heads, 2 kv heads, head_dim 8, 10 positions (prompt_len 7),
float32 tensors, and:
  * attn_scale 0.3 (not 1/sqrt(8)) and attn_logit_softcap 2.0 (small, so the
    cap changes the weights a lot);
  * rotary_dim 6 < head_dim (channels 6, 7 are not rotated), /rope_inv_freq of
    3 non-geometric frequencies, rope_style neox or gptj, root
    rope_attention_scaling 1.25; layer 1 overrides the frequencies
    (/layers/1/rope_inv_freq), layer 2 overrides the scaling (attribute 1.0);
  * sliding_window 4 on layer 0, none on layer 1, 1 on layer 2 (a query sees
    only itself), 15 on layer 3 (wider than the sequence: same as none).
Keys and queries are made as RoPE(pre-RoPE vectors) at positions 0..9.

Reference values, datasets in the group /reference of the same file (float64,
computed from the float32 tensors as stored, tools/kvdump_reference.py; the
first axis is the layer):
  pre_rope_keys     [L, kv_heads, T, d]  RoPE undone: what KVQuant-style undo must give (1e-6)
  pre_rope_queries  [L, heads, T, d]
  attention_weights [L, heads, T, T]     row t: softmax over the keys visible to the query at
                                         position t (0 where masked), with scale, cap, window
  attention_output  [L, heads, T, d]     attention_weights @ values (GQA: head h reads kv head h // 2)
  logits            [L, heads, T, T]     scale * q.k, then soft-capped; -inf where masked
/reference attributes: what the layer resolves to (scale, softcap, window per
layer, rotary_dim, style, attention_scaling per layer) as a reader must find it.
kvlab's DumpReader ignores /reference (it reads only what docs/dump-format.md names).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvdump import layer_attention, read_kvdump, write_kvdump  # noqa: E402
from kvdump_reference import attention_allowed, attention_logits, attention_output, attention_weights  # noqa: E402
from kvdump_reference import rope_rotate  # noqa: E402

L, H, HKV, D, T, PROMPT = 4, 4, 2, 8, 10, 7
SCALE, SOFTCAP, ROTARY_DIM = 0.3, 2.0, 6
INV_FREQ = np.array([0.9, 0.23, 0.017])           # root frequencies (any positive values)
INV_FREQ_LAYER1 = np.array([1.7, 0.4, 0.05])      # layer 1's own
SCALINGS = [1.25, 1.25, 1.0, 1.25]                # root 1.25, layer 2 overrides with 1.0
WINDOWS = [4, None, 1, 15]


def make_fixture(path, style, seed=0):
    """Write one fixture dump and its /reference group; returns the path."""
    import h5py

    rng = np.random.default_rng(seed)
    pos = np.arange(T)
    invs = [INV_FREQ_LAYER1 if i == 1 else INV_FREQ for i in range(L)]
    K, V, Q = [], [], []
    for i in range(L):
        rope = dict(inv_freq=invs[i], rotary_dim=ROTARY_DIM, style=style, attention_scaling=SCALINGS[i])
        K.append(rope_rotate(rng.normal(0, 1.5, (HKV, T, D)), pos, rope).astype(np.float32))
        Q.append(rope_rotate(rng.normal(0, 1.5, (H, T, D)), pos, rope).astype(np.float32))
        V.append(rng.normal(0, 1, (HKV, T, D)).astype(np.float32))
    write_kvdump(path, K, V, Q, prompt_len=PROMPT, tokens=rng.integers(0, 256, T), dtype="float32",
                 model=f"kvlab attention fixture ({style}, seed {seed})", rope_style=style, attn_scale=SCALE,
                 attn_logit_softcap=SOFTCAP, sliding_window=WINDOWS, rope_inv_freq=invs, rotary_dim=ROTARY_DIM,
                 rope_attention_scaling=SCALINGS)

    d = read_kvdump(path)  # references from the tensors as stored, through the reader's resolution
    with h5py.File(path, "a") as f:
        ref = f.create_group("reference")
        ref.attrs["description"] = ("NumPy reference (tools/make_attention_fixtures.py): per layer RoPE undone "
                                    "with the dump's frequencies, attention of every position with attn_scale, "
                                    "attn_logit_softcap, sliding_window and GQA")
        ref.attrs["window"] = np.array([-1 if w is None else w for w in WINDOWS], dtype=np.int64)  # -1: none
        ref.attrs["attention_scaling"] = np.array(SCALINGS, dtype=np.float64)
        ref.attrs["scale"], ref.attrs["softcap"] = np.float64(SCALE), np.float64(SOFTCAP)
        ref.attrs["rotary_dim"], ref.attrs["style"] = np.int64(ROTARY_DIM), style
        out = {n: [] for n in ("pre_rope_keys", "pre_rope_queries", "attention_weights", "attention_output",
                               "logits")}
        for i in range(L):
            at = layer_attention(d, i)
            assert at["window"] == WINDOWS[i] and at["rope"]["attention_scaling"] == SCALINGS[i]
            assert np.array_equal(at["rope"]["inv_freq"], invs[i])
            q, k, v = (np.asarray(d[n][i], dtype=np.float64) for n in ("queries", "keys", "values"))
            kv_of = [h // (H // HKV) for h in range(H)]
            out["pre_rope_keys"].append(rope_rotate(k, pos, at["rope"], inverse=True))
            out["pre_rope_queries"].append(rope_rotate(q, pos, at["rope"], inverse=True))
            out["attention_weights"].append(np.stack([attention_weights(q[h], k[kv_of[h]], at["scale"], at["softcap"],
                                                                        at["window"]) for h in range(H)]))
            out["attention_output"].append(attention_output(q, k, v, at["scale"], at["softcap"], at["window"]))
            lg = np.stack([attention_logits(q[h], k[kv_of[h]], at["scale"], at["softcap"]) for h in range(H)])
            out["logits"].append(np.where(attention_allowed(pos, pos, at["window"])[None], lg, -np.inf))
        for n, arrs in out.items():
            ref[n] = np.stack(arrs)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    for style in ("neox", "gptj"):
        path = make_fixture(os.path.join(a.out, f"attention-{style}.kvdump.h5"), style, seed=a.seed)
        print(f"{path}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
