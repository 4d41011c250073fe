"""NumPy reference for what a kvdump's attention description means
(docs/dump-format.md, "Attention and RoPE"): RoPE undo/redo from
/rope_inv_freq, rotary_dim, rope_style and rope_attention_scaling, and causal
attention with attn_scale, attn_logit_softcap, sliding_window and GQA.

Plain float64 loops over heads, written for clarity: the recorder's tests check
it against transformers models, and tools/make_attention_fixtures.py uses it to
write reference values for kvlab's C++ tests. NumPy only.
"""

from __future__ import annotations

import numpy as np


def rope_rotate(x, positions, rope, inverse=False):
    """Apply (or, with inverse=True, undo) RoPE on the last axis of x.

    x: [..., T, head_dim]; positions: [T] token positions; rope: dict(inv_freq
    [rotary_dim/2], rotary_dim, style 'neox'|'gptj', attention_scaling a), as
    kvdump.layer_attention() returns. Forward: the first rotary_dim channels are
    rotated pairwise by angle position * inv_freq[i] and everything rotated is
    multiplied by a (transformers multiplies cos and sin by it); channels from
    rotary_dim on pass through unchanged. Inverse: rotate by the negative angle,
    divide by a.
    """
    x = np.asarray(x, dtype=np.float64)
    inv = np.asarray(rope["inv_freq"], dtype=np.float64)
    rd, a = int(rope["rotary_dim"]), float(rope["attention_scaling"])
    if inv.shape != (rd // 2,) or rd > x.shape[-1]:
        raise ValueError(f"rope: {inv.shape[0]} frequencies for rotary_dim {rd}, head_dim {x.shape[-1]}")
    ang = np.outer(np.asarray(positions, dtype=np.float64), inv)  # [T, rd/2]
    cos, sin = np.cos(ang), np.sin(ang)
    if inverse:
        sin = -sin
    if rope["style"] == "neox":  # channel i pairs with i + rd/2
        i1, i2 = np.arange(rd // 2), np.arange(rd // 2) + rd // 2
    elif rope["style"] == "gptj":  # channel 2i pairs with 2i + 1
        i1, i2 = np.arange(0, rd, 2), np.arange(1, rd, 2)
    else:
        raise ValueError(f"rope_style: expected 'neox' or 'gptj', found {rope['style']!r}")
    y = x.copy()
    x1, x2 = x[..., i1], x[..., i2]
    y[..., i1] = x1 * cos - x2 * sin
    y[..., i2] = x2 * cos + x1 * sin
    if inverse:
        y[..., :rd] /= a
    else:
        y[..., :rd] *= a
    return y


def attention_allowed(q_positions, k_positions, window):
    """[Tq, Tk] bool: key position j is visible to a query at position t iff
    j <= t and (no window, or j > t - window), i.e. j in (t - W, t]: the W most
    recent positions including t itself (transformers' sliding_window_overlay)."""
    t = np.asarray(q_positions)[:, None]
    j = np.asarray(k_positions)[None, :]
    ok = j <= t
    if window is not None:
        ok &= j > t - int(window)
    return ok


def attention_logits(q, k, scale, softcap):
    """[Tq, Tk] logits of one head: s = scale * q.k, then, with a soft-cap c,
    c * tanh(s / c) (Gemma 2 order: scale first, cap second, mask last)."""
    s = (np.asarray(q, dtype=np.float64) @ np.asarray(k, dtype=np.float64).T) * float(scale)
    if softcap is not None:
        s = float(softcap) * np.tanh(s / float(softcap))
    return s


def attention_weights(q, k, scale, softcap, window, q_positions=None):
    """Softmax over visible keys for one head: q [Tq, d] at q_positions (default
    the last Tq of the Tk key positions), k [Tk, d] at positions 0..Tk-1."""
    Tq, Tk = q.shape[0], k.shape[0]
    qp = np.arange(Tk - Tq, Tk) if q_positions is None else np.asarray(q_positions)
    s = attention_logits(q, k, scale, softcap)
    s = np.where(attention_allowed(qp, np.arange(Tk), window), s, -np.inf)
    s -= s.max(axis=1, keepdims=True)
    p = np.exp(s)
    return p / p.sum(axis=1, keepdims=True)


def attention_output(q, k, v, scale, softcap=None, window=None):
    """Causal attention of every position: q [H, T, d], k/v [Hkv, T, d] -> [H, T, d].
    GQA: query head h reads kv head h // (H / Hkv)."""
    H, Hkv = q.shape[0], k.shape[0]
    g = H // Hkv
    out = np.zeros(q.shape, dtype=np.float64)
    for h in range(H):
        p = attention_weights(q[h], k[h // g], scale, softcap, window)
        out[h] = p @ np.asarray(v[h // g], dtype=np.float64)
    return out
