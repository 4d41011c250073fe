#!/usr/bin/env python3
"""Train the bundled tiny byte-level Llama model and record its kvdumps.

    python3 tools/train_tiny_lm.py --corpus tinyshakespeare.txt [--out-dir data] [--work-dir build/tiny-lm]

Steps (all seeded):
  1. byte-level tokens (vocab 256, no tokenizer files); the last 5% of the corpus
     is held out for validation and for the recording prompts;
  2. a LlamaForCausalLM (RoPE theta 10000, RMSNorm, SwiGLU, grouped-query
     attention) trained with AdamW (bf16 autocast on GPU, float32 on CPU);
  3. the weights are rounded to float16 (so every artefact below describes the
     same model), saved as a Hugging Face checkpoint (safetensors) in --work-dir,
     and exported with tools/export_model.py to OUT/tiny-lm/model.h5 (with
     vocab_type = "bytes", so kvlab can print its generations as text);
  4. kvdumps recorded with tools/record_kv.py's record_sequence (same code path
     as the CLI): prompt = held-out text, then sampled continuation;
  5. OUT/tiny-lm/reference_logits.h5: float32 teacher-forced forward (CPU) over
     the first N tokens of the first dump.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_model  # noqa: E402
import record_kv  # noqa: E402


def log(msg, fh=None):
    print(msg, flush=True)
    if fh:
        fh.write(msg + "\n")
        fh.flush()


def build_model(a):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=256, hidden_size=a.hidden, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.hidden // a.heads,
                      max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      attention_bias=False, mlp_bias=False, hidden_act="silu", bos_token_id=None,
                      eos_token_id=None, pad_token_id=None, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg)


def eval_loss(model, data, seq_len, device, batch=16, autocast=False):
    """Mean next-byte cross-entropy (nats) over non-overlapping windows of data."""
    import torch
    import torch.nn.functional as F

    n = (len(data) - 1) // seq_len
    tot, cnt = 0.0, 0
    model.eval()
    with torch.no_grad():
        for s in range(0, n, batch):
            idx = range(s, min(n, s + batch))
            x = torch.stack([torch.from_numpy(data[i * seq_len:(i + 1) * seq_len].astype(np.int64)) for i in idx])
            y = torch.stack([torch.from_numpy(data[i * seq_len + 1:(i + 1) * seq_len + 1].astype(np.int64))
                             for i in idx])
            x, y = x.to(device), y.to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids=x).logits
            tot += F.cross_entropy(logits.float().reshape(-1, 256), y.reshape(-1), reduction="sum").item()
            cnt += y.numel()
    model.train()
    return tot / cnt


def prompt_starts(val, count, prompt_len, total):
    """Start offsets (in val) of `count` prompts at the beginning of a speech
    (after a blank line), spread over the held-out text."""
    starts = []
    for j in range(count):
        pos = int((j + 0.15) / count * (len(val) - total))
        txt = bytes(val[pos:pos + 4096])
        k = txt.find(b"\n\n")
        pos = pos + (k + 2 if k >= 0 else 0)
        starts.append(min(pos, len(val) - prompt_len))
    return starts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True)
    p.add_argument("--out-dir", default=os.path.join(os.path.dirname(HERE), "data"))
    p.add_argument("--work-dir", default=os.path.join(os.path.dirname(HERE), "build", "tiny-lm"),
                   help="Hugging Face checkpoint (safetensors) and the training log go here")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=768)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--num-dumps", type=int, default=2)
    p.add_argument("--prompt-len", type=int, default=384)
    p.add_argument("--new-tokens", type=int, default=640)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--record-seed", type=int, default=1234)
    p.add_argument("--ref-tokens", type=int, default=96)
    a = p.parse_args(argv)

    import torch
    import torch.nn.functional as F

    t_start = time.time()
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    use_amp = device.startswith("cuda")
    os.makedirs(a.work_dir, exist_ok=True)
    os.makedirs(os.path.join(a.out_dir, "tiny-lm"), exist_ok=True)
    fh = open(os.path.join(a.work_dir, "train_log.txt"), "w")
    log(f"torch {torch.__version__}, device {device}, args {vars(a)}", fh)

    raw = np.frombuffer(open(a.corpus, "rb").read(), dtype=np.uint8)
    n_val = len(raw) // 20
    train, val = raw[:-n_val], raw[-n_val:]
    counts = np.bincount(train, minlength=256).astype(np.float64) + 1e-3
    pu = counts / counts.sum()
    unigram_train = float(-(pu * np.log(pu)).sum())
    unigram_val = float(-np.log(pu[val]).mean())
    log(f"corpus {len(raw)} bytes: train {len(train)}, validation {len(val)} (last 5%); unigram "
        f"entropy train {unigram_train:.4f} nats/byte, unigram cross-entropy on validation {unigram_val:.4f}", fh)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    model = build_model(a).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {model.config.num_hidden_layers} layers, hidden {a.hidden}, heads {a.heads} x {a.hidden // a.heads},"
        f" kv heads {a.kv_heads}, ffn {a.ffn}, params {n_params}", fh)

    if use_amp:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95),
                            fused=use_amp)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        prog = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))

    gen = torch.Generator().manual_seed(a.seed)
    train_t = torch.from_numpy(train.astype(np.int64))
    model.train()
    t0 = time.time()
    ema = None
    history = []
    best = None
    for step in range(a.steps):
        ix = torch.randint(0, len(train) - a.seq_len - 1, (a.batch,), generator=gen)
        x = torch.stack([train_t[i:i + a.seq_len] for i in ix.tolist()]).to(device, non_blocking=True)
        y = torch.stack([train_t[i + 1:i + 1 + a.seq_len] for i in ix.tolist()]).to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().reshape(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            lv = loss.item()
            ema = lv if ema is None else 0.8 * ema + 0.2 * lv
            if step % 100 == 0 or step == a.steps - 1:
                log(f"step {step:5d} loss {lv:.4f} (ema {ema:.4f}) lr {lr_at(step):.2e} "
                    f"{time.time() - t0:.1f}s", fh)
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            vl = eval_loss(model, val, a.seq_len, device, autocast=use_amp)
            history.append((step + 1, vl))
            if best is None or vl < best[1]:
                best = (step + 1, vl, {k: v.detach().clone() for k, v in model.state_dict().items()})
            log(f"step {step + 1:5d} validation loss {vl:.4f} nats/byte (best {best[1]:.4f} at {best[0]})", fh)
    if use_amp:
        torch.cuda.synchronize()
    train_time = time.time() - t0
    # Early stopping: keep the weights with the lowest validation loss (evaluated every --eval-every steps).
    model.load_state_dict(best[2])
    best_step = best[0]
    log(f"keeping the weights of step {best_step} (validation loss {best[1]:.4f}, bf16 autocast)", fh)
    del best

    # Round to float16 once: the checkpoint, model.h5, the dumps and the reference all use these weights.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(prm.half().float())
    model.eval()
    val_loss = eval_loss(model, val, a.seq_len, device, autocast=False)
    g2 = torch.Generator().manual_seed(a.seed + 1)
    starts = torch.randint(0, len(train) - a.seq_len - 1, (64,), generator=g2).tolist()
    tr_sample = np.concatenate([train[s:s + a.seq_len + 1] for s in starts])
    # windows of seq_len+1 concatenated: evaluate each window separately
    tot = 0.0
    for j in range(len(starts)):
        w = tr_sample[j * (a.seq_len + 1):(j + 1) * (a.seq_len + 1)]
        tot += eval_loss(model, w, a.seq_len, device)
    train_loss = tot / len(starts)
    log(f"trained {a.steps} steps (kept step {best_step}) in {train_time:.1f}s; float16-rounded weights, float32 eval: "
        f"train loss {train_loss:.4f}, validation loss {val_loss:.4f} nats/byte "
        f"({val_loss / math.log(2):.4f} bits/byte); unigram baseline {unigram_val:.4f}", fh)

    # Save the checkpoint and export kvlab-model.
    model.save_pretrained(a.work_dir, safe_serialization=True)
    model_name = (f"kvlab tiny-lm: byte-level Llama {a.layers}L hidden {a.hidden} heads {a.heads}x"
                  f"{a.hidden // a.heads} kv {a.kv_heads} ffn {a.ffn}, tinyshakespeare, seed {a.seed}")
    mpath = os.path.join(a.out_dir, "tiny-lm", "model.h5")
    export_model.export_checkpoint(a.work_dir, mpath, dtype="float16", model_name=model_name, vocab="bytes")
    attrs, w = export_model.read_model(mpath)
    sd = {k: v.float().cpu().numpy() for k, v in model.state_dict().items()}
    assert np.array_equal(w["layers/0/q_proj"], sd["model.layers.0.self_attn.q_proj.weight"])
    assert np.array_equal(w["lm_head"], sd["lm_head.weight"])
    log(f"wrote {mpath} ({os.path.getsize(mpath)} bytes)", fh)

    # Record kvdumps (same code path as tools/record_kv.py).
    total = a.prompt_len + a.new_tokens
    dumps = []
    for j, s in enumerate(prompt_starts(val, a.num_dumps, a.prompt_len, total)):
        ids = val[s:s + a.prompt_len].tolist()
        t1 = time.time()
        rec = record_kv.record_sequence(model, ids, a.new_tokens, sample=True, seed=a.record_seed + j,
                                        temperature=a.temperature)
        path = os.path.join(a.out_dir, f"shakespeare-{'abcdefgh'[j]}.kvdump.h5")
        text = record_kv.byte_decode(rec["tokens"])
        record_kv.write_record(path, rec, model_name=model_name, text=text, dtype="float16")
        dumps.append((path, rec))
        log(f"wrote {path} ({os.path.getsize(path)} bytes, {time.time() - t1:.1f}s): prompt = validation "
            f"bytes [{len(train) + s}, {len(train) + s + a.prompt_len}) of the corpus, {a.new_tokens} tokens "
            f"sampled (T={a.temperature}, seed {a.record_seed + j})", fh)
        log("---- text ----\n" + text[: a.prompt_len] + "<<<GENERATED>>>" + text[a.prompt_len:] + "\n----", fh)

    # Reference logits: float32 CPU teacher-forced forward over the first N tokens of the first dump.
    cpu_model = model.to("cpu").float().eval()
    toks = dumps[0][1]["tokens"][: a.ref_tokens]
    captured = {}
    hdl = cpu_model.model.norm.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o))
    with torch.no_grad():
        out = cpu_model(input_ids=torch.tensor([toks]), use_cache=False)
    hdl.remove()
    logits = out.logits[0].float().numpy()
    last_hidden = captured["h"][0].float().numpy()
    chk = last_hidden @ sd["lm_head.weight"].T
    assert np.allclose(chk, logits, atol=1e-4), "lm_head(last_hidden) != logits"
    import h5py

    rpath = os.path.join(a.out_dir, "tiny-lm", "reference_logits.h5")
    with h5py.File(rpath, "w") as f:
        f.attrs["model"] = "model.h5"
        f.attrs["source_dump"] = os.path.basename(dumps[0][0])
        f.attrs["description"] = ("teacher-forced float32 forward (PyTorch, CPU, no KV cache) of model.h5's "
                                  "weights over tokens[0:N] of the dump; logits[i] predicts token i+1; "
                                  "last_hidden = final RMSNorm output")
        f.create_dataset("tokens", data=np.array(toks, dtype=np.int64))
        f.create_dataset("logits", data=logits.astype(np.float32))
        f.create_dataset("last_hidden", data=last_hidden.astype(np.float32))
    nll = float(F.cross_entropy(out.logits[0, :-1], torch.tensor(toks[1:])).item())
    log(f"wrote {rpath}: N={len(toks)}, mean NLL of tokens[1:N] {nll:.4f}", fh)

    summary = dict(params=n_params, steps=a.steps, best_step=best_step, batch=a.batch, seq_len=a.seq_len, train_time_s=train_time,
                   train_loss=train_loss, val_loss=val_loss, unigram_val=unigram_val, val_history=history,
                   total_time_s=time.time() - t_start, device=device, torch=torch.__version__)
    with open(os.path.join(a.work_dir, "summary.json"), "w") as fj:
        json.dump(summary, fj, indent=1)
    log("summary " + json.dumps(summary), fh)
    fh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
