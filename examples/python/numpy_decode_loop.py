#!/usr/bin/env python3
"""A fake-quantized KV cache inside a NumPy decoding loop: one attention head
whose cache is a kvlab State. Prints the attention-output error of each
method against exact attention as the cache grows.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/numpy_decode_loop.py
"""

import numpy as np

import kvlab

rng = np.random.default_rng(0)
d, prompt, total = 64, 256, 512
scale = np.where(np.arange(d) % 16 == 3, 8.0, 1.0)  # a few outlier key channels, as after RoPE
keys = (rng.standard_normal((total, d)) * scale).astype(np.float32)
values = rng.standard_normal((total, d)).astype(np.float32)
queries = (rng.standard_normal((total, d)) * scale / 4).astype(np.float32)


def attention(q, k, v, present):
    logits = k @ q / np.sqrt(d)
    logits[~present] = -np.inf
    p = np.exp(logits - logits.max())
    return (p / p.sum()) @ v


for spec in ["fp16", "kivi-2bit", "kivi-4bit", "gear-2bit", "h2o-20pct"]:
    state = kvlab.Compressor(spec).new_state(head_dim=d, prompt_len=prompt, max_tokens=total)
    q1 = queries[:, None, :]  # one query head per kv head: [group_size=1, ...]
    state.prefill(keys[:prompt], values[:prompt], q1[:prompt].transpose(1, 0, 2))
    errors = []
    for t in range(prompt, total):
        state.append(keys[t], values[t], q1[t])
        k_hat, v_hat, present = state.view()
        exact = attention(queries[t], keys[:t + 1], values[:t + 1], np.ones(t + 1, bool))
        approx = attention(queries[t], k_hat, v_hat, present)
        errors.append(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
    bits = state.bits()["total"]
    print(f"{spec:10} ratio {16 * 2 * total * d / bits:5.2f}  "
          f"attn err first/last 64 steps {np.mean(errors[:64]):.4f} / {np.mean(errors[-64:]):.4f}")
