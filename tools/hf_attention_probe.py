"""What a live transformers decoder's attention is, read from the model itself
while it runs, for tools/record_kv.py: RoPE (inverse frequencies, rotary_dim,
pairing, cos/sin scaling), query scale, logit soft-cap and sliding windows.

Nothing here is taken on trust from the config alone:
  * RoPE: the cos/sin each attention module receives are matched against the
    `*inv_freq` buffers of the model's rotary modules (recomputed the way
    transformers does, in float32) and checked again at every later forward, so
    a frequency change mid-recording (dynamic NTK beyond the original context)
    is detected; the pairing (neox rotate-half or gptj interleaved) is chosen
    by reproducing the keys the model cached from k_proj(x) at the prefill, so
    an attention variant the recorder does not understand fails loudly.
  * sliding windows: read from the attention mask each module receives (eager
    attention); the config (layer_types, sliding_window) is the fallback when
    no mask is passed.
  * scale and soft-cap: the attention module's `scaling` and
    `attn_logit_softcapping` (what transformers passes to its attention kernels).
"""

from __future__ import annotations

import numpy as np


class UnsupportedModel(Exception):
    """The architecture cannot be recorded (no q_proj/k_proj, no rotary embedding, ...)."""


def _eps_tol(dtype, base):
    """Tolerance for values of `dtype` compared with a float32 recomputation."""
    import torch

    return base if dtype in (torch.float32, torch.float64) else 4 * float(torch.finfo(dtype).eps)


# --------------------------------------------------------------------------- RoPE in torch

def apply_rope(x, cos, sin, layout, style):
    """Rotate the first rotary_dim = cos.shape[-1] channels of x [b, h, s, d]
    with the model's own cos/sin [b, s, rotary_dim]; the rest pass through.

    layout: how cos/sin hold the per-pair angles ('cat' = cat(freqs, freqs) as
    transformers' rotary modules build them, 'interleaved' = each frequency
    repeated twice). style: 'neox' pairs channel i with i + rd/2, 'gptj' pairs
    2i with 2i + 1 (e.g. GLM, Helium: first half of cos repeat-interleaved).
    """
    import torch

    rd = cos.shape[-1]
    half_c = cos[..., : rd // 2] if layout == "cat" else cos[..., 0::2]
    half_s = sin[..., : rd // 2] if layout == "cat" else sin[..., 0::2]
    if style == "neox":
        c, s = torch.cat((half_c, half_c), dim=-1), torch.cat((half_s, half_s), dim=-1)
    else:
        c, s = half_c.repeat_interleave(2, dim=-1), half_s.repeat_interleave(2, dim=-1)
    c, s = c.unsqueeze(1).to(x.dtype), s.unsqueeze(1).to(x.dtype)
    xr, xp = x[..., :rd], x[..., rd:]
    if style == "neox":
        rot = torch.cat((-xr[..., rd // 2:], xr[..., : rd // 2]), dim=-1)
    else:
        rot = torch.stack((-xr[..., 1::2], xr[..., 0::2]), dim=-1).flatten(-2)
    return torch.cat((xr * c + rot * s, xp), dim=-1)


def project_heads(att, proj, norm, hidden_states, head_dim):
    """proj(h) as [b, heads, s, head_dim], with the per-head norm (Qwen3/Gemma3 q_norm/k_norm) if any.
    Calls .forward so that hooks on the projections (a user's, or a test's) do not see the recorder's calls."""
    b, s = hidden_states.shape[:2]
    x = proj.forward(hidden_states).view(b, s, -1, head_dim).transpose(1, 2)
    return norm.forward(x) if norm is not None else x


def rope_candidates(model):
    """(module, buffer name, scaling attribute name) of every inverse-frequency
    buffer of the model's rotary modules ('inv_freq', Gemma 3's per-layer-type
    '<type>_inv_freq', ...); 'original_*' copies are left out."""
    out = []
    for mod in model.modules():
        for name, _ in mod.named_buffers(recurse=False):
            if name.endswith("inv_freq") and "original" not in name:
                out.append((mod, name, name[: -len("inv_freq")] + "attention_scaling"))
    return out


def _angles_like_transformers(inv_freq, positions, layout):
    """float32 [s, rd] angles: transformers multiplies float32 inv_freq by float32 positions."""
    import torch

    f = positions.float()[:, None] * inv_freq.detach().float().cpu()[None, :]
    return torch.cat((f, f), dim=-1) if layout == "cat" else f.repeat_interleave(2, dim=-1)


def _cos_sin_error(cos, sin, inv_freq, positions, layout, a):
    ang = _angles_like_transformers(inv_freq, positions, layout)
    c, s = cos[0].detach().float().cpu(), sin[0].detach().float().cpu()
    return max(float((c - ang.cos() * a).abs().max()), float((s - ang.sin() * a).abs().max()))


class LayerRope:
    """The RoPE one attention module uses, found at its first forward."""

    def __init__(self, source, inv_freq, layout, a, rotary_dim):
        self.source = source            # (module, buffer name, scaling attribute)
        self.inv_freq = inv_freq        # torch float32 CPU snapshot
        self.layout = layout
        self.attention_scaling = a
        self.rotary_dim = rotary_dim
        self.style = None               # decided from the cached keys
        self.problem = None             # why the dump cannot describe it (set on a change)

    def inv_freq_f64(self):
        return self.inv_freq.double().numpy()


def match_rope(model, cos, sin, positions):
    """Find which inverse-frequency buffer (and cos/sin layout and scaling a)
    produced the cos/sin a module received at `positions` (which include 0)."""
    import torch

    rd = cos.shape[-1]
    tol = _eps_tol(cos.dtype, 1e-5)
    best = None
    for mod, name, scaling_name in rope_candidates(model):
        inv = getattr(mod, name)
        if not torch.is_tensor(inv) or 2 * inv.numel() != rd:
            continue
        # cos(0) = 1, so cos at position 0 is the scaling a (yarn's attention factor, else 1)
        a0 = float(cos[0, int((positions == 0).nonzero()[0])].float().abs().max())
        a = getattr(mod, scaling_name, None)
        a = float(a) if isinstance(a, (int, float)) and abs(float(a) - a0) <= tol * max(1.0, a0) else a0
        for layout in ("cat", "interleaved"):
            err = _cos_sin_error(cos, sin, inv, positions, layout, a)
            if err <= tol * max(1.0, a) and (best is None or err < best[0]):
                best = (err, LayerRope((mod, name, scaling_name), inv.detach().float().cpu().clone(), layout, a, rd))
    if best is None:
        raise UnsupportedModel(
            f"the cos/sin given to the attention modules match none of the model's inv_freq buffers "
            f"({len(rope_candidates(model))} found); this RoPE variant is not supported")
    return best[1]


def check_rope_unchanged(rope, cos, sin, positions):
    """Mark `rope.problem` if this forward's cos/sin no longer come from the
    frequencies found at the prefill (dynamic NTK recomputes them as the
    sequence grows past original_max_position_embeddings)."""
    import torch

    if rope.problem is not None:
        return
    mod, name, _ = rope.source
    now = getattr(mod, name).detach().float().cpu()
    err = _cos_sin_error(cos, sin, rope.inv_freq, positions, rope.layout, rope.attention_scaling)
    if not torch.equal(now, rope.inv_freq) or err > _eps_tol(cos.dtype, 1e-5) * max(1.0, rope.attention_scaling):
        rope.problem = (f"the rotary frequencies changed at position {int(positions[0])} (dynamic RoPE scaling "
                        "past the original context?): keys at different positions were rotated with different "
                        "frequencies")


def choose_style(rope, k_pre, cached_keys, cos, sin):
    """Pick the pairing that turns k_proj(x) (k_pre) into the keys the model cached."""
    errs = {}
    ref = cached_keys.float()
    scale = float(ref.abs().max()) + 1e-30
    for style in ("neox", "gptj"):
        got = apply_rope(k_pre, cos, sin, rope.layout, style).float()
        errs[style] = float((got - ref).abs().max()) / scale
    style = min(errs, key=errs.get)
    if errs[style] > _eps_tol(cached_keys.dtype, 1e-4):
        raise UnsupportedModel(
            "cannot reproduce the cached keys as RoPE(k_proj(x)) (relative error neox "
            f"{errs['neox']:.2e}, gptj {errs['gptj']:.2e}); this attention variant is not supported")
    rope.style = style


# --------------------------------------------------------------------------- windows

class WindowObserver:
    """Sliding window of one layer, read from the attention masks it receives:
    every row must be a contiguous block of keys ending at the query's position."""

    def __init__(self):
        self.window = None      # W seen in a row that did not reach position 0
        self.full_rows = 0      # largest t+1 of a row that saw all of [0, t]
        self.seen = False

    def observe(self, mask, past, s, layer, memo=None):
        """Take in the mask of one forward (query positions past .. past+s-1). `memo`
        (a dict shared by the layers) avoids re-reading a mask several layers share."""
        import torch

        if not torch.is_tensor(mask) or mask.dim() < 2 or tuple(mask.shape[-2:]) != (s, past + s):
            return
        key = (mask.data_ptr(), tuple(mask.shape), mask.dtype, past)
        if memo is not None and any(k[3] != past for k in memo):
            memo.clear()  # a new forward: only masks of the same forward are shared
        if memo is None or key not in memo:
            summary = _mask_summary(mask, past, s)
            if memo is not None:
                memo[key] = summary
        else:
            summary = memo[key]
        if summary is None:
            raise UnsupportedModel(
                f"layer {layer}: the attention mask is neither causal nor a sliding window (a query sees keys "
                "after it, or a gap); chunked or bidirectional attention is not supported")
        widths, full_rows = summary
        self.seen = True
        if len(widths) > 1 or (widths and self.window is not None and self.window != min(widths)):
            raise UnsupportedModel(f"layer {layer}: the attention mask's window width varies")
        if widths:
            self.window = min(widths)
        self.full_rows = max(self.full_rows, full_rows)

    def result(self, config_window, layer):
        if self.window is not None:
            if self.full_rows > self.window:
                raise UnsupportedModel(f"layer {layer}: the attention mask mixes full and windowed rows")
            return self.window
        if self.seen and config_window is not None and self.full_rows > config_window:
            return None  # the model attended beyond the config's window: not a windowed layer
        return config_window


def _mask_summary(mask, past, s):
    """(set of window widths of the rows that do not reach position 0, largest
    t+1 of a row that sees all of [0, t]) for a mask whose rows are contiguous
    key blocks ending at the query's own position; None for any other mask."""
    import torch

    m = mask.reshape(-1, s, past + s)[0]
    allowed = ((m == 0) if m.is_floating_point() else m.bool()).cpu()
    t = torch.arange(past, past + s)[:, None]
    j = torch.arange(past + s)[None, :]
    lo = allowed.int().argmax(dim=1, keepdim=True)
    if not torch.equal(allowed, (j >= lo) & (j <= t)):
        return None
    cut = lo[:, 0] > 0
    widths = {int(w) for w in (t[:, 0] - lo[:, 0] + 1)[cut].unique()}
    full_rows = int(t[~cut, 0].max()) + 1 if bool((~cut).any()) else 0
    return widths, full_rows


def config_window(model, att, layer):
    """The sliding window transformers' config gives `layer` (fallback when no mask is seen)."""
    cfg = model.config
    w = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if types is not None and layer < len(types):
        if types[layer] not in ("full_attention", "sliding_attention"):
            raise UnsupportedModel(f"layer {layer}: layer type {types[layer]!r} is not supported")
        return int(w) if types[layer] == "sliding_attention" and w else None
    if hasattr(att, "sliding_window"):
        return int(att.sliding_window) if att.sliding_window else None
    if not w or getattr(cfg, "use_sliding_window", True) is False:
        return None
    return int(w)


def scale_and_softcap(model, mods, head_dim):
    """(attn_scale, attn_logit_softcap) shared by all layers: what transformers
    passes to its attention kernels (module.scaling; Gemma 2's attn_logit_softcapping)."""
    scales, caps = set(), set()
    for att in mods:
        sc = getattr(att, "scaling", None)
        scales.add(float(sc) if sc is not None else head_dim ** -0.5)
        cap = getattr(att, "attn_logit_softcapping", getattr(model.config, "attn_logit_softcapping", None))
        caps.add(float(cap) if cap else None)
    if len(scales) != 1 or len(caps) != 1:
        raise UnsupportedModel(f"attention scale {sorted(scales)} or soft-cap {caps} differs between layers")
    return scales.pop(), caps.pop()


def plain_rope_theta(model, inv_freq, head_dim):
    """rope_theta if 1/theta^(2i/head_dim) (computed as transformers does, in
    float32) is exactly inv_freq over the whole head, else None."""
    cfg = model.config
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
    theta = getattr(cfg, "rope_theta", None)
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    if not isinstance(theta, (int, float)) or 2 * inv_freq.size != head_dim:
        return None
    plain = (1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))))
    return float(theta) if np.allclose(plain.astype(np.float64), inv_freq, rtol=1e-6, atol=0) else None
