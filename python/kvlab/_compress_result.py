"""compress(): one layer's tensors through a compressor, as `kvlab run` replays them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kvlab


@dataclass(frozen=True)
class CompressResult:
    """What compress() returns.

    keys, values: float32 [kv_heads, T, d], the reconstruction after the last
    token (rows of evicted tokens are zero); keys is None for methods that
    store no reconstructible keys (QJL: use Compressor.new_state(...).logits()).
    present: bool [kv_heads, T], False where a token was evicted.
    bits: the exact size of the compressed cache, all heads, by component
    (codes, metadata, sparse, lowrank, fp16, index, total: summary.csv's bits_*
    columns); head_bits: the same per kv head.
    """

    keys: np.ndarray | None
    values: np.ndarray
    present: np.ndarray
    bits: dict
    head_bits: list
    spec: str
    prompt_len: int

    @property
    def baseline_bits(self) -> int:
        """FP16 size of the same cache: 16 * 2 * kv_heads * T * d."""
        return 16 * 2 * int(np.prod(self.values.shape))

    @property
    def compression_ratio(self) -> float:
        return self.baseline_bits / self.bits["total"]

    @property
    def bits_per_element(self) -> float:
        return self.bits["total"] / (2 * int(np.prod(self.values.shape)))


def compress(spec, keys, values, prompt_len=None, queries=None, seed=0, *, layer=0, num_layers=1,
             rope_theta=None, rope_style=None, attention=None, threads=None) -> CompressResult:
    """Replays [kv_heads, T, d] keys and values through `spec` as `kvlab run`
    replays one layer of a dump: tokens [0, prompt_len) at prefill (all of
    them when prompt_len is None), then one token at a time.

    queries: [query_heads, T, d] (query_heads a multiple of kv_heads), needed by
    methods that score tokens by attention (H2O, SnapKV, ...). seed, layer and
    num_layers select the random streams and per-layer budgets exactly as in a
    dump with that layer; rope_theta/rope_style describe RoPE for methods that
    undo it (KVQuant); attention: a kvlab.AttentionRule (scale, soft-cap,
    sliding window) for methods that score tokens by attention, as a dump's
    attn_scale/attn_logit_softcap/sliding_window attributes (default: 1/sqrt(d),
    none, full causal). threads: kv heads compressed in parallel (default: all
    cores). Inputs may be any float array or CPU tensor; the GIL is released.
    """
    out = _kvlab.compress(spec, keys, values, prompt_len, queries, seed, layer=layer, num_layers=num_layers,
                          rope_theta=rope_theta, rope_style=rope_style, attention=attention, threads=threads)
    return CompressResult(**out)
