#!/usr/bin/env python3
"""Record the KV cache (and the post-RoPE queries) of a Hugging Face causal LM
into kvdump v1 files (docs/dump-format.md).

    python3 tools/record_kv.py --model PATH_OR_NAME --prompt "Once upon a time" \
        --new-tokens 256 --out dumps/ [--sample --seed 0 --temperature 0.9] [--dtype float16]

Supported: RoPE decoders in transformers whose decoder layers have
`self_attn.{q_proj,k_proj,v_proj}` and receive `position_embeddings=(cos, sin)`
(Llama incl. Llama 3 / YaRN / linear RoPE scaling, Mistral, Qwen2/Qwen3,
Gemma/Gemma 2/Gemma 3, StableLM, GLM, ...), including partial rotary and
sliding-window layers. Anything else fails with a one-line error and exit
status 2: the recorder reproduces the cached keys from k_proj(x) at the prefill
and refuses a model whose keys it cannot reproduce.

How it records (one sequence at a time, batch 1):
  * prefill: ONE forward over the whole prompt with use_cache=True;
  * decode: one token per forward, re-using the cache (greedy or sampled with a
    fixed seed). The cache is a DynamicCache that keeps every position of every
    layer; sliding-window layers still attend to their window through the mask;
  * keys/values: read from that cache after the last step, i.e. exactly what
    the model cached (post-RoPE keys);
  * queries: a forward hook on each attention module recomputes
    q = RoPE(q_norm?(q_proj(hidden_states))) from the module's own inputs and
    position embeddings, for every position (prefill and decode). Queries are
    recorded unscaled: attn_scale (the model's own, e.g. Gemma's
    query_pre_attn_scalar^-0.5) applies to q.k;
  * attention description (hf_attention_probe): attn_scale, attn_logit_softcap,
    per-layer sliding_window, rope_inv_freq / rotary_dim / rope_style /
    rope_attention_scaling as the model used them (rope_theta too when plain RoPE
    reproduces them exactly).

The last generated token is also fed through the model, so the cache holds all
prompt_len + new_tokens positions, each with its query.

Library use (train_tiny_lm.py and the tests use the same path):
    rec = record_sequence(model, prompt_ids, new_tokens=..., sample=..., seed=...)
    write_record(path, rec, model_name=..., text=..., dtype="float16")
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_attention_probe import (UnsupportedModel, WindowObserver, apply_rope, check_rope_unchanged,  # noqa: E402
                                choose_style, config_window, match_rope, plain_rope_theta, project_heads,
                                scale_and_softcap)
from kvdump import write_kvdump  # noqa: E402

__all__ = ["UnsupportedModel", "AttentionRecorder", "attention_modules", "model_shape", "record_sequence",
           "write_record", "cache_layer_kv"]


# --------------------------------------------------------------------------- model structure

def _decoder(model):
    dec = None
    if hasattr(model, "get_decoder"):
        try:
            dec = model.get_decoder()
        except Exception:
            dec = None
    if dec is None:
        dec = getattr(model, "model", None)
    if dec is None or not hasattr(dec, "layers"):
        raise UnsupportedModel(
            f"{type(model).__name__}: no decoder with a .layers list (expected a Llama-style "
            "model.model.layers[i].self_attn)")
    return dec


def attention_modules(model):
    """The attention module of every decoder layer, in layer order."""
    dec = _decoder(model)
    mods = []
    for i, layer in enumerate(dec.layers):
        att = getattr(layer, "self_attn", None)
        if att is None:
            raise UnsupportedModel(f"{type(model).__name__}: layer {i} has no self_attn module")
        missing = [n for n in ("q_proj", "k_proj", "v_proj") if not hasattr(att, n)]
        if missing:
            raise UnsupportedModel(
                f"{type(model).__name__}: attention module {type(att).__name__} has no "
                f"{'/'.join(missing)} (fused or non-Llama-style projections are not supported)")
        if getattr(att, "sinks", None) is not None:  # gpt-oss: an extra logit per head the dump cannot carry
            raise UnsupportedModel(f"{type(att).__name__}: attention sinks are not supported")
        mods.append(att)
    if not mods:
        raise UnsupportedModel(f"{type(model).__name__}: model has no decoder layers")
    if getattr(dec, "rotary_emb", None) is None:
        raise UnsupportedModel(
            f"{type(model).__name__}: no rotary embedding (decoder has no rotary_emb); only RoPE "
            "models are supported")
    return mods


def _head_dim(att, config):
    hd = getattr(att, "head_dim", None)
    if hd is None and config is not None:
        hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if hd is None:
        raise UnsupportedModel(f"{type(att).__name__}: cannot determine head_dim")
    return int(hd)


def model_shape(model):
    """(num_layers, num_heads, num_kv_heads, head_dim) from the modules themselves."""
    mods = attention_modules(model)
    att = mods[0]
    hd = _head_dim(att, model.config)
    H = att.q_proj.out_features // hd
    Hkv = att.k_proj.out_features // hd
    return len(mods), H, Hkv, hd


# --------------------------------------------------------------------------- capture

def _arg(args, kwargs, name, pos):
    if name in kwargs:
        return kwargs[name]
    if len(args) > pos:
        return args[pos]
    return None


class _Layer:
    def __init__(self):
        self.queries = []           # [num_heads, s, head_dim] float32 CPU chunks
        self.rope = None            # hf_attention_probe.LayerRope, from the first forward
        self.window = WindowObserver()
        self.positions = 0          # positions seen so far


class AttentionRecorder:
    """Forward hooks on every attention module. For each forward it records the
    post-RoPE queries q = RoPE(q_norm?(q_proj(h))) (computed from the module's
    own inputs and position embeddings), and it learns what the dump must say
    about attention (hf_attention_probe): the RoPE frequencies and pairing, and
    the sliding window seen in the attention mask."""

    def __init__(self, model):
        self.model = model
        self.mods = attention_modules(model)
        self.head_dim = _head_dim(self.mods[0], model.config)
        self.layers = [_Layer() for _ in self.mods]
        self.handles = []
        self.mask_memo = {}  # layers of one forward share their masks

    def __enter__(self):
        for i, att in enumerate(self.mods):
            self.handles.append(att.register_forward_hook(self._hook(i), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles = []
        return False

    def _hook(self, i):
        import torch

        def hook(module, args, kwargs, output):
            hs = _arg(args, kwargs, "hidden_states", 0)
            pe = _arg(args, kwargs, "position_embeddings", 1)
            if hs is None:
                raise UnsupportedModel(f"{type(module).__name__}: attention called without hidden_states")
            if not (isinstance(pe, (tuple, list)) and len(pe) == 2 and all(torch.is_tensor(t) for t in pe)):
                raise UnsupportedModel(
                    f"{type(module).__name__}: attention not called with position_embeddings=(cos, sin); "
                    "this transformers version or architecture is not supported")
            if hs.shape[0] != 1:
                raise ValueError("record_kv records one sequence at a time (batch size 1)")
            with torch.no_grad():
                self._record(i, module, hs, pe, _arg(args, kwargs, "attention_mask", 2),
                             kwargs.get("past_key_values", kwargs.get("past_key_value")))
            return None

        return hook

    def _record(self, i, att, hs, pe, mask, cache):
        import torch

        lay, hd = self.layers[i], self.head_dim
        cos, sin = pe
        s = hs.shape[1]
        past = lay.positions
        positions = torch.arange(past, past + s)
        if lay.rope is None:
            if past != 0:
                raise RuntimeError(f"layer {i}: first forward does not start at position 0")
            lay.rope = match_rope(self.model, cos, sin, positions)
            if cache is None:
                raise UnsupportedModel(f"{type(att).__name__}: attention called without its cache")
            k_cached = cache_layer_kv(cache, getattr(att, "layer_idx", i))[0][:, :, past:past + s]
            k_pre = project_heads(att, att.k_proj, getattr(att, "k_norm", None), hs, hd)
            try:
                choose_style(lay.rope, k_pre, k_cached, cos, sin)
            except UnsupportedModel as e:
                raise UnsupportedModel(f"{type(att).__name__} (layer {i}): {e}") from None
        else:
            check_rope_unchanged(lay.rope, cos, sin, positions)
        q = project_heads(att, att.q_proj, getattr(att, "q_norm", None), hs, hd)
        q = apply_rope(q, cos, sin, lay.rope.layout, lay.rope.style)
        lay.queries.append(q[0].float().cpu())
        lay.window.observe(mask, past, s, i, self.mask_memo)
        lay.positions += s

    def queries(self):
        import torch

        return [torch.cat(lay.queries, dim=1) for lay in self.layers]

    def attention(self):
        """The dump's attention description (kvdump.write_kvdump keyword arguments)
        and a warning text (or None) when RoPE cannot be described."""
        scale, softcap = scale_and_softcap(self.model, self.mods, self.head_dim)
        out = dict(attn_scale=scale, attn_logit_softcap=softcap,
                   sliding_window=[lay.window.result(config_window(self.model, att, i), i)
                                   for i, (lay, att) in enumerate(zip(self.layers, self.mods))],
                   rope_theta=None, rope_style=None, rope_inv_freq=None, rotary_dim=None,
                   rope_attention_scaling=None)
        ropes = [lay.rope for lay in self.layers]
        problems = [f"layer {i}: {r.problem}" for i, r in enumerate(ropes) if r.problem]
        if problems:
            return out, problems[0] + "; RoPE attributes omitted (attention is still exact)"
        if len({r.style for r in ropes}) != 1 or len({r.rotary_dim for r in ropes}) != 1:
            return out, "layers differ in RoPE pairing or rotary_dim; RoPE attributes omitted"
        invs = [r.inv_freq_f64() for r in ropes]
        scalings = [float(r.attention_scaling) for r in ropes]
        out.update(rope_style=ropes[0].style, rope_inv_freq=invs, rotary_dim=ropes[0].rotary_dim,
                   rope_attention_scaling=scalings if any(a != 1.0 for a in scalings) else None)
        if all(np.array_equal(x, invs[0]) for x in invs) and all(a == 1.0 for a in scalings):
            out["rope_theta"] = plain_rope_theta(self.model, invs[0], self.head_dim)
        return out, None


def cache_layer_kv(cache, i):
    """(keys, values) of layer i from a transformers cache, across versions."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[i].keys, layers[i].values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[i], cache.value_cache[i]
    k, v = cache[i][:2]
    return k, v


def _full_cache():
    """A cache that keeps every position of every layer. The model's default
    cache keeps only the last sliding_window - 1 positions of sliding layers;
    the mask still applies the window, so attention is the same."""
    try:
        from transformers import DynamicCache
    except ImportError:
        return None
    return DynamicCache()


# --------------------------------------------------------------------------- recording

def record_sequence(model, prompt_ids, new_tokens, *, sample=False, seed=0, temperature=1.0, top_k=0,
                    eos_token_id=None):
    """Prefill `prompt_ids` in one forward, decode `new_tokens` tokens one at a
    time with the model's own cache, record K/V (from the cache) and queries.

    Returns dict(keys=[L x [Hkv,T,d] float32 tensor], values=..., queries=[L x [H,T,d]],
    tokens=[T] list of int, prompt_len=P, cache=<the cache object>, attention=<the
    dump's attention description, write_kvdump keywords incl. rope_theta/rope_style>,
    rope_theta, rope_style, rope_warning (text or None), shape=(L,H,Hkv,d)).
    """
    import torch

    L, H, Hkv, hd = model_shape(model)
    device = next(model.parameters()).device
    ids = [int(t) for t in prompt_ids]
    if len(ids) < 1:
        raise ValueError("empty prompt")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), AttentionRecorder(model) as rec:
            inp = torch.tensor([ids], dtype=torch.long, device=device)
            out = model(input_ids=inp, past_key_values=_full_cache(), use_cache=True)
            cache = out.past_key_values
            tokens = list(ids)
            for step in range(new_tokens):
                logits = out.logits[0, -1].float().cpu()
                if sample:
                    logits = logits / max(float(temperature), 1e-6)
                    if top_k and top_k > 0:
                        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                        logits = torch.where(logits < kth, torch.full_like(logits, -math.inf), logits)
                    probs = torch.softmax(logits, dim=-1)
                    nxt = int(torch.multinomial(probs, 1, generator=gen).item())
                else:
                    nxt = int(torch.argmax(logits).item())
                tokens.append(nxt)
                # feed the new token: its K/V and query enter the cache/recording
                out = model(input_ids=torch.tensor([[nxt]], dtype=torch.long, device=device),
                            past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                if eos_token_id is not None and nxt in (eos_token_id if isinstance(eos_token_id, (list, tuple))
                                                        else [eos_token_id]):
                    break
            queries = rec.queries()
            attention, rope_warning = rec.attention()
    finally:
        model.train(was_training)

    T = len(tokens)
    keys, values = [], []
    for i in range(L):
        k, v = cache_layer_kv(cache, i)
        if k.shape[0] != 1 or tuple(k.shape[1:]) != (Hkv, T, hd) or tuple(v.shape[1:]) != (Hkv, T, hd):
            raise UnsupportedModel(
                f"layer {i}: cache holds keys {tuple(k.shape)}, values {tuple(v.shape)}, expected "
                f"(1, {Hkv}, {T}, {hd}) (a cache that drops or compresses positions is not supported)")
        keys.append(k[0].float().cpu())
        values.append(v[0].float().cpu())
    for i, q in enumerate(queries):
        if tuple(q.shape) != (H, T, hd):
            raise RuntimeError(f"layer {i}: recorded queries {tuple(q.shape)}, expected {(H, T, hd)}")
    return dict(keys=keys, values=values, queries=queries, tokens=tokens, prompt_len=len(ids), cache=cache,
                attention=attention, rope_theta=attention["rope_theta"], rope_style=attention["rope_style"],
                rope_warning=rope_warning, shape=(L, H, Hkv, hd))


def write_record(path, rec, *, model_name="", text="", dtype="float16", with_queries=True):
    """Write a record_sequence() result as a kvdump v1 file."""
    to_np = lambda ts: [t.numpy() for t in ts]  # noqa: E731
    return write_kvdump(path, to_np(rec["keys"]), to_np(rec["values"]),
                        to_np(rec["queries"]) if with_queries else None,
                        prompt_len=rec["prompt_len"], tokens=rec["tokens"], model=model_name, text=text,
                        dtype=dtype, **rec["attention"])


def byte_decode(tokens):
    return bytes(int(t) & 0xFF for t in tokens).decode("utf-8", errors="replace")


def byte_encode(text):
    return list(text.encode("utf-8"))


# --------------------------------------------------------------------------- CLI

def _load(model_id, device, torch_dtype, byte_tokens, attn):
    import torch
    from transformers import AutoModelForCausalLM

    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "auto": "auto"}[torch_dtype]
    kw = {}
    if attn:
        kw["attn_implementation"] = attn
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dt, **kw)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_id, torch_dtype=dt, **kw)
    model.to(device)
    tok = None
    if not byte_tokens:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_id)
    return model, tok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local path or Hugging Face name")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt", action="append", help="prompt text (repeat for several prompts)")
    g.add_argument("--prompt-file", action="append",
                   help="file whose whole content is one prompt (repeat for several prompts)")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-prompt-tokens", type=int, default=0, help="truncate prompts to this many tokens")
    p.add_argument("--out", default=".", help="output folder (files NAME-0.kvdump.h5, NAME-1, ...) "
                   "or a file name ending in .h5 for a single prompt")
    p.add_argument("--name", default=None, help="file name stem (default: model name)")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32", "float64"],
                   help="storage type in the dump")
    p.add_argument("--torch-dtype", default="float32", choices=["float32", "float16", "bfloat16", "auto"],
                   help="dtype the model runs in")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--attn-implementation", default="eager")
    p.add_argument("--no-queries", action="store_true")
    p.add_argument("--stop-at-eos", action="store_true")
    p.add_argument("--byte-tokens", action="store_true",
                   help="UTF-8 bytes as token ids (models without tokenizer files, e.g. data/tiny-lm)")
    a = p.parse_args(argv)

    try:
        import torch
    except ImportError as e:
        print(f"record_kv: error: PyTorch is required: {e}", file=sys.stderr)
        return 2
    prompts = a.prompt or []
    for fn in a.prompt_file or []:
        with open(fn, encoding="utf-8") as fh:
            prompts.append(fh.read())
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model, tok = _load(a.model, device, a.torch_dtype, a.byte_tokens, a.attn_implementation)
        attention_modules(model)  # fail early on unsupported architectures
        stem = a.name or os.path.basename(os.path.normpath(a.model)).replace("/", "_")
        single = a.out.endswith(".h5")
        if single and len(prompts) != 1:
            raise ValueError("--out FILE.h5 needs exactly one prompt; give a folder for several")
        if not single:
            os.makedirs(a.out, exist_ok=True)
        for n, text in enumerate(prompts):
            if a.byte_tokens:
                ids = byte_encode(text)
                decode = byte_decode
            else:
                ids = tok(text, add_special_tokens=True)["input_ids"]
                decode = lambda t: tok.decode(t)  # noqa: E731
            if a.max_prompt_tokens:
                ids = ids[: a.max_prompt_tokens]
            eos = None
            if a.stop_at_eos and tok is not None:
                eos = tok.eos_token_id
            rec = record_sequence(model, ids, a.new_tokens, sample=a.sample, seed=a.seed + n,
                                  temperature=a.temperature, top_k=a.top_k, eos_token_id=eos)
            if rec["rope_warning"]:
                print(f"record_kv: warning: {rec['rope_warning']}", file=sys.stderr)
            path = a.out if single else os.path.join(a.out, f"{stem}-{n}.kvdump.h5")
            shape = write_record(path, rec, model_name=a.model, text=decode(rec["tokens"]), dtype=a.dtype,
                                 with_queries=not a.no_queries)
            print(f"{path}: layers={shape['num_layers']} heads={shape['num_heads']} "
                  f"kv_heads={shape['num_kv_heads']} head_dim={shape['head_dim']} "
                  f"prompt_len={rec['prompt_len']} seq_len={shape['seq_len']}")
    except UnsupportedModel as e:
        print(f"record_kv: error: unsupported model: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError, RuntimeError) as e:
        print(f"record_kv: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
