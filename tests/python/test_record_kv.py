#!/usr/bin/env python3
"""Tests for tools/record_kv.py on small randomly initialised models (nothing
is downloaded).

Checks: the dump's keys/values are exactly the model's own cache; they match an
independent teacher-forced forward over the whole sequence; recomputing
attention softmax(q k^T / sqrt(d)) V (causal, GQA) from the recorded queries,
keys and values reproduces the attention module's output before o_proj for every
layer, head and position; greedy decoding agrees with teacher forcing; float16
storage; unsupported architectures fail with a clear error (library and CLI).

Needs torch + transformers; otherwise prints "SKIP: <reason>" and exits 77.
Run: python3 tests/python/test_record_kv.py
"""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

try:
    import numpy as np
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
except Exception as e:  # ImportError, or a broken install
    print(f"SKIP: torch/transformers not importable ({type(e).__name__}: {e})")
    sys.exit(77)

import record_kv  # noqa: E402
from kvdump import read_kvdump  # noqa: E402

torch.set_grad_enabled(False)


def sharpen(model, factor=4.0):
    """Random init (std 0.02) gives near-uniform attention; scale q/k so the
    attention patterns are peaky and the test is meaningful."""
    for att in record_kv.attention_modules(model):
        att.q_proj.weight.mul_(factor)
        att.k_proj.weight.mul_(factor)


def tiny_llama(seed=0, layers=3, heads=4, kv_heads=2, head_dim=16, vocab=256):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=heads * head_dim, intermediate_size=96,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=512, attn_implementation="eager")
    m = LlamaForCausalLM(cfg).float().eval()
    sharpen(m)
    return m


class OProjInputs:
    """Collects the input of every o_proj (= attention output before o_proj)."""

    def __init__(self, model):
        self.mods = record_kv.attention_modules(model)
        self.chunks = [[] for _ in self.mods]

    def __enter__(self):
        self.h = [att.o_proj.register_forward_pre_hook(self._hook(i)) for i, att in enumerate(self.mods)]
        return self

    def __exit__(self, *e):
        for h in self.h:
            h.remove()

    def _hook(self, i):
        def hook(mod, args):
            self.chunks[i].append(args[0][0].float().cpu())
        return hook

    def outputs(self):
        return [torch.cat(c, dim=0) for c in self.chunks]  # [T, H*hd]


def attention_from_dump(q, k, v, scale):
    """q [H,T,d], k/v [Hkv,T,d] (numpy float64) -> [T, H*d] causal GQA attention."""
    H, T, d = q.shape
    g = H // k.shape[0]
    out = np.zeros((T, H, d))
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for h in range(H):
        kh, vh = k[h // g], v[h // g]
        s = q[h] @ kh.T * scale
        s[mask] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        out[:, h] = p @ vh
    return out.reshape(T, H * d)


class RecordKVTest(unittest.TestCase):
    def check_model(self, model, prompt_len=24, new_tokens=16, sample=True):
        L, H, Hkv, hd = record_kv.model_shape(model)
        g = torch.Generator().manual_seed(123)
        prompt = torch.randint(0, model.config.vocab_size, (prompt_len,), generator=g).tolist()
        with OProjInputs(model) as oi:
            rec = record_kv.record_sequence(model, prompt, new_tokens, sample=sample, seed=7, temperature=1.0)
        T = prompt_len + new_tokens
        self.assertEqual(len(rec["tokens"]), T)
        self.assertEqual(rec["tokens"][:prompt_len], prompt)
        # prefill is one forward + one forward per decoded token
        self.assertEqual(len(oi.chunks[0]), 1 + new_tokens)
        self.assertEqual(oi.chunks[0][0].shape[0], prompt_len)

        with tempfile.TemporaryDirectory() as td:
            path = os.path.join(td, "t.kvdump.h5")
            record_kv.write_record(path, rec, model_name="test", text="x", dtype="float32")
            d = read_kvdump(path)
            path16 = os.path.join(td, "t16.kvdump.h5")
            record_kv.write_record(path16, rec, model_name="test")
            d16 = read_kvdump(path16)
        a = d["attrs"]
        self.assertEqual((a["num_layers"], a["num_heads"], a["num_kv_heads"], a["head_dim"]), (L, H, Hkv, hd))
        self.assertEqual(a["prompt_len"], prompt_len)
        self.assertEqual(a["rope_style"], "neox")
        self.assertAlmostEqual(a["rope_theta"], 10000.0)
        np.testing.assert_array_equal(d["tokens"], np.array(rec["tokens"]))
        self.assertEqual(d16["keys"][0].dtype, np.float16)

        # 1. keys/values are exactly the model's own cache
        for i in range(L):
            k, v = record_kv.cache_layer_kv(rec["cache"], i)
            np.testing.assert_array_equal(d["keys"][i], k[0].float().cpu().numpy())
            np.testing.assert_array_equal(d["values"][i], v[0].float().cpu().numpy())
            np.testing.assert_allclose(d16["keys"][i].astype(np.float32), d["keys"][i], rtol=2e-3, atol=1e-3)

        # 2. same as an independent teacher-forced forward over the full sequence
        full = model(input_ids=torch.tensor([rec["tokens"]]), use_cache=True)
        for i in range(L):
            k, v = record_kv.cache_layer_kv(full.past_key_values, i)
            np.testing.assert_allclose(d["keys"][i], k[0].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(d["values"][i], v[0].numpy(), rtol=1e-4, atol=1e-5)

        # 3. attention recomputed from the dump == module output before o_proj
        outs = oi.outputs()
        scale = record_kv.attention_modules(model)[0].scaling
        self.assertAlmostEqual(scale, hd ** -0.5, places=6)
        for i in range(L):
            ref = outs[i].numpy().astype(np.float64)
            self.assertEqual(ref.shape, (T, H * hd))
            got = attention_from_dump(d["queries"][i].astype(np.float64), d["keys"][i].astype(np.float64),
                                      d["values"][i].astype(np.float64), scale)
            err = np.abs(got - ref).max() / (np.abs(ref).max() + 1e-12)
            self.assertLess(err, 1e-4, f"layer {i}: attention recomputed from the dump differs ({err:.2e})")
            # attention must actually be position dependent (not uniform): sanity of the test
            self.assertGreater(np.abs(np.diff(ref, axis=0)).max(), 1e-3)
        return rec, full

    def test_llama_sampled(self):
        self.check_model(tiny_llama(seed=0), sample=True)

    def test_llama_greedy_matches_teacher_forcing(self):
        m = tiny_llama(seed=1, layers=2, heads=8, kv_heads=2, head_dim=8)
        rec, full = self.check_model(m, prompt_len=9, new_tokens=20, sample=False)
        logits = full.logits[0]
        P = 9
        for t in range(P, len(rec["tokens"])):
            row = logits[t - 1]
            top2 = torch.topk(row, 2).values
            if float(top2[0] - top2[1]) > 1e-4:
                self.assertEqual(rec["tokens"][t], int(row.argmax()), f"position {t}")

    def test_mha_no_gqa(self):
        self.check_model(tiny_llama(seed=2, layers=2, heads=2, kv_heads=2, head_dim=32), prompt_len=5,
                         new_tokens=3)

    def test_qwen2_bias(self):
        try:
            from transformers import Qwen2Config, Qwen2ForCausalLM
        except ImportError as e:
            self.skipTest(f"Qwen2 not available: {e}")
        torch.manual_seed(3)
        cfg = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          attn_implementation="eager")
        m = Qwen2ForCausalLM(cfg).float().eval()
        with torch.no_grad():
            for att in record_kv.attention_modules(m):
                self.assertIsNotNone(att.q_proj.bias)
                att.q_proj.bias.normal_(0, 0.5)
                att.k_proj.bias.normal_(0, 0.5)
        sharpen(m)
        self.check_model(m, prompt_len=11, new_tokens=7)

    def test_unsupported_architecture(self):
        from transformers import GPT2Config, GPT2LMHeadModel

        m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=64))
        with self.assertRaises(record_kv.UnsupportedModel) as cm:
            record_kv.record_sequence(m, [1, 2, 3], 2)
        self.assertIn("GPT2", str(cm.exception))

    def test_cli(self):
        tool = os.path.join(ROOT, "tools", "record_kv.py")
        with tempfile.TemporaryDirectory() as td:
            good = os.path.join(td, "llama")
            tiny_llama(seed=4, layers=2).save_pretrained(good)
            out = os.path.join(td, "dumps")
            r = subprocess.run([sys.executable, tool, "--model", good, "--byte-tokens", "--prompt", "Hello there",
                                "--prompt", "Second prompt!", "--new-tokens", "5", "--sample", "--seed", "3",
                                "--out", out, "--name", "t", "--device", "cpu"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            for n, plen in ((0, 11), (1, 14)):
                d = read_kvdump(os.path.join(out, f"t-{n}.kvdump.h5"))
                self.assertEqual(d["attrs"]["prompt_len"], plen)
                self.assertEqual(d["keys"][0].shape[1], plen + 5)
                self.assertEqual(d["keys"][0].dtype, np.float16)
                self.assertTrue(d["attrs"]["text"].startswith(["Hello there", "Second prompt!"][n]))

            bad = os.path.join(td, "gpt2")
            from transformers import GPT2Config, GPT2LMHeadModel

            GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=256,
                                       n_positions=64)).save_pretrained(bad)
            r = subprocess.run([sys.executable, tool, "--model", bad, "--byte-tokens", "--prompt", "x",
                                "--new-tokens", "2", "--out", os.path.join(td, "bad"), "--device", "cpu"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, r.stderr)
            err_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("record_kv: error")]
            self.assertEqual(len(err_lines), 1, r.stderr)
            self.assertIn("unsupported model", err_lines[0])


if __name__ == "__main__":
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    res = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if res.wasSuccessful() else 1)
