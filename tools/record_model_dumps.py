#!/usr/bin/env python3
"""Record more kvdumps from a byte-level kvlab-model file (e.g. the bundled
data/tiny-lm/model.h5) with transformers, through the same recording path as
tools/record_kv.py (record_sequence: one prefill forward, then one token at a
time with the model's own cache; keys/values from the cache, queries from a
pre-hook).

    python3 tools/record_model_dumps.py data/tiny-lm/model.h5 --out DIR --count 6 \
        [--first-seed 2000] [--prompt-len 384] [--new-tokens 640] [--temperature 0.9] [--name tiny]

The model file is loaded into a transformers LlamaForCausalLM (float32; the
weights are the file's, bit for bit) and checked against
data/tiny-lm/reference_logits.h5 when that file sits next to it. Prompts: the
bundled dumps' prompts are held-out corpus text, which is not in this
repository, so each prompt here is sampled from the model itself (T =
--temperature) after two newlines (seed s), and the continuation is sampled
from that prompt (seed s + 1) — the whole sequence is model text, in the
model's own distribution. Dump j uses s = first_seed + 2j.

Needs torch + transformers + h5py (a GPU when there is one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_model  # noqa: E402
import record_kv  # noqa: E402


def hf_model(path, device):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    attrs, w = export_model.read_model(path)
    if attrs.get("rope_style") != "neox":
        raise SystemExit(f"{path}: rope_style {attrs.get('rope_style')} (transformers' Llama is neox)")
    extra = {} if attrs["rope_theta"] == 10000.0 else {"rope_theta": attrs["rope_theta"]}
    cfg = LlamaConfig(vocab_size=attrs["vocab_size"], hidden_size=attrs["hidden_size"],
                      intermediate_size=attrs["intermediate_size"], num_hidden_layers=attrs["num_layers"],
                      num_attention_heads=attrs["num_heads"], num_key_value_heads=attrs["num_kv_heads"],
                      head_dim=attrs["head_dim"], rms_norm_eps=attrs["rms_norm_eps"],
                      tie_word_embeddings=bool(attrs["tie_word_embeddings"]), max_position_embeddings=4096,
                      attention_bias=False, mlp_bias=False, hidden_act="silu", bos_token_id=None, eos_token_id=None,
                      pad_token_id=None, attn_implementation="eager", **extra)
    model = LlamaForCausalLM(cfg)
    theta, _, _ = record_kv.rope_info(model)
    if theta != attrs["rope_theta"]:
        raise SystemExit(f"{path}: transformers' config took rope_theta {theta}, the file says {attrs['rope_theta']}")
    sd = {"model.embed_tokens.weight": w["embed_tokens"], "model.norm.weight": w["norm"]}
    if not attrs["tie_word_embeddings"]:
        sd["lm_head.weight"] = w["lm_head"]
    for i in range(attrs["num_layers"]):
        p, g = f"model.layers.{i}.", f"layers/{i}/"
        sd[p + "input_layernorm.weight"] = w[g + "input_layernorm"]
        sd[p + "post_attention_layernorm.weight"] = w[g + "post_attention_layernorm"]
        for n in "qkvo":
            sd[p + f"self_attn.{n}_proj.weight"] = w[g + f"{n}_proj"]
        for n in ("gate", "up", "down"):
            sd[p + f"mlp.{n}_proj.weight"] = w[g + f"{n}_proj"]
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        raise SystemExit(f"{path}: weights do not fit LlamaForCausalLM (missing {missing}, unexpected {unexpected})")
    return model.float().eval().to(device), attrs


def check_reference(model, path):
    """Max relative error per position against reference_logits.h5, if present."""
    import h5py
    import torch

    ref = os.path.join(os.path.dirname(os.path.abspath(path)), "reference_logits.h5")
    if not os.path.exists(ref):
        return None
    with h5py.File(ref, "r") as f:
        toks, logits = f["tokens"][()], f["logits"][()]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([toks.tolist()], device=next(model.parameters()).device)).logits[0]
    out = out.float().cpu().numpy()
    return float(np.max(np.linalg.norm(out - logits, axis=1) / np.linalg.norm(logits, axis=1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="kvlab-model file (byte-level)")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=6)
    p.add_argument("--first-seed", type=int, default=2000)
    p.add_argument("--prompt-len", type=int, default=384)
    p.add_argument("--new-tokens", type=int, default=640)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--name", default="tiny")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)

    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, attrs = hf_model(a.model, device)
    err = check_reference(model, a.model)
    print(f"{a.model} on {device} (torch {torch.__version__}): max rel logits error vs reference_logits.h5 "
          f"{'n/a' if err is None else f'{err:.2e}'}", flush=True)
    if err is not None and err > 1e-4:
        raise SystemExit("the transformers model does not reproduce the reference logits")
    os.makedirs(a.out, exist_ok=True)
    for j in range(a.count):
        s = a.first_seed + 2 * j
        t0 = time.time()
        head = record_kv.record_sequence(model, [10, 10], a.prompt_len - 2, sample=True, seed=s,
                                         temperature=a.temperature)
        prompt = head["tokens"][: a.prompt_len]
        rec = record_kv.record_sequence(model, prompt, a.new_tokens, sample=True, seed=s + 1,
                                        temperature=a.temperature)
        path = os.path.join(a.out, f"{a.name}-s{s}.kvdump.h5")
        name = f"{attrs.get('model', '')} | prompt sampled (T={a.temperature}, seed {s}), continuation seed {s + 1}"
        record_kv.write_record(path, rec, model_name=name, text=record_kv.byte_decode(rec["tokens"]), dtype="float16")
        print(f"wrote {path} ({os.path.getsize(path)} bytes, {time.time() - t0:.1f} s): "
              f"{record_kv.byte_decode(rec['tokens'][a.prompt_len - 60: a.prompt_len + 60])!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
