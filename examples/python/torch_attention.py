#!/usr/bin/env python3
"""Fake-quantized K/V inside a PyTorch attention layer: the layer's KV cache
is a kvlab layer state, so any kvlab method replaces the FP16 cache in a
decoding loop. Needs torch (exits 77 with the reason when it is missing).

    PYTHONPATH=build/python /usr/bin/python3 examples/python/torch_attention.py
"""

import sys

try:
    import torch
except ImportError as e:
    print(f"SKIP: torch is not installed ({e})")
    sys.exit(77)

import kvlab


class CompressedKVAttention(torch.nn.Module):
    """Grouped-query attention whose cache is kvlab's `spec` (prefill, then one token at a time)."""

    def __init__(self, spec, d_model=128, heads=4, kv_heads=2, max_tokens=512):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, d_model // heads
        self.q = torch.nn.Linear(d_model, heads * self.hd, bias=False)
        self.k = torch.nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.v = torch.nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.o = torch.nn.Linear(heads * self.hd, d_model, bias=False)
        self.compressor, self.max_tokens, self.cache = kvlab.Compressor(spec), max_tokens, None

    def forward(self, x):  # x: [T, d_model]; the first call is the prompt, later calls one token each
        t = x.shape[0]
        q = self.q(x).view(t, self.h, self.hd).transpose(0, 1)  # [heads, T, hd]
        k = self.k(x).view(t, self.kv, self.hd).transpose(0, 1)  # [kv_heads, T, hd]
        v = self.v(x).view(t, self.kv, self.hd).transpose(0, 1)
        if self.cache is None:  # prefill: exact causal attention, then the prompt goes into the cache
            self.cache = self.compressor.new_layer_state(num_kv_heads=self.kv, head_dim=self.hd, prompt_len=t,
                                                         max_tokens=self.max_tokens, group_size=self.h // self.kv)
            self.cache.prefill(k, v, q)  # CPU tensors are read in place (no copy)
            keys, values, mask = k, v, torch.ones(t, t, dtype=torch.bool).tril()
        else:  # decode: attend over the compressed cache
            self.cache.append(k[:, 0], v[:, 0], q[:, 0])
            keys, values, present = (None if a is None else torch.from_numpy(a) for a in self.cache.view())
            mask = present[:, None, :]  # [kv_heads, 1, T]: evicted tokens take no attention
        g = self.h // self.kv
        keys, values = keys.repeat_interleave(g, 0), values.repeat_interleave(g, 0)
        if mask.dim() == 3:
            mask = mask.repeat_interleave(g, 0)
        scores = (q @ keys.transpose(1, 2)) / self.hd ** 0.5
        out = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ values
        return self.o(out.transpose(0, 1).reshape(t, -1))


def decode(spec, x):
    torch.manual_seed(0)  # the same weights for every spec
    layer = CompressedKVAttention(spec)
    with torch.no_grad():
        layer(x[:256])
        return torch.cat([layer(x[t:t + 1]) for t in range(256, x.shape[0])])


x = torch.randn(512, 128, generator=torch.Generator().manual_seed(1))
exact = decode("fp16", x)
for spec in ["kivi-4bit", "uniform-4bit", "kivi-2bit", "gear-2bit"]:
    err = (decode(spec, x) - exact).norm() / exact.norm()
    print(f"{spec:10} output rel. error vs the FP16 cache: {err:.4f}")
