#!/usr/bin/env python3
"""Tests for tools/record_kv.py on small randomly initialised models (nothing
is downloaded): Llama (GQA, MHA), Llama 3 / YaRN / linear / dynamic RoPE
scaling, Qwen2 (q/k/v bias), Mistral (1 kv head, sliding window), Qwen3 (q/k
norm), Gemma 2 (query_pre_attn_scalar, logit soft-cap, alternating sliding
windows), Gemma 3 (per-layer-type RoPE), partial rotary (StableLM: neox, GLM:
gptj pairing, Phi).

For every model, from the dump alone (NumPy, tools/kvdump_reference.py):
  (a) keys/values equal the model's own cache (and the last positions of an
      independent teacher-forced forward with the model's default cache);
  (b) attention recomputed from the dump's Q, K, V with attn_scale,
      attn_logit_softcap, sliding_window and GQA equals the input of o_proj,
      during recording and in the teacher-forced forward;
  (c) undoing RoPE on the keys with /rope_inv_freq, rotary_dim, rope_style and
      rope_attention_scaling and redoing it gives the keys back, and the undone
      keys equal k_proj(x) (after k_norm where the model has one).
Plus: greedy decoding agrees with teacher forcing, float16 storage, refusals
(GPT-2, keys the recorder cannot reproduce, chunked masks), and the CLI.

Needs torch + transformers; otherwise prints "SKIP: <reason>" and exits 77.
Run: python3 tests/python/test_record_kv.py   (prints a table of measured errors)
"""

import inspect
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

import hf_attention_probe  # noqa: E402
import record_kv  # noqa: E402
from kvdump import layer_attention, read_kvdump  # noqa: E402
from kvdump_reference import attention_output, rope_rotate  # noqa: E402

torch.set_grad_enabled(False)
RESULTS = []  # (name, measured errors) for the summary table


def sharpen(model, factor=4.0):
    """Random init (std 0.02) gives near-uniform attention; scale q/k (or their
    norms, which would undo a weight scale) so attention is peaky and the test
    is meaningful."""
    for att in record_kv.attention_modules(model):
        for proj, norm in (("q_proj", "q_norm"), ("k_proj", "k_norm")):
            n = getattr(att, norm, None)
            if n is None:
                getattr(att, proj).weight.mul_(factor)
            elif bool((n.weight == 0).all()):  # Gemma RMSNorm scales by (1 + weight)
                n.weight.fill_(factor - 1.0)
            else:
                n.weight.mul_(factor)


def rope_kwargs(config_cls, rope_type, theta=10000.0, **params):
    """RoPE settings for a config constructor: transformers 5 takes
    rope_parameters, older versions rope_theta + rope_scaling."""
    if "rope_parameters" in inspect.signature(config_cls.__init__).parameters:
        return dict(rope_parameters=dict(rope_type=rope_type, rope_theta=theta, **params))
    kw = dict(rope_theta=theta)
    if rope_type != "default":
        kw["rope_scaling"] = dict(rope_type=rope_type, **params)
    return kw


def build(config_cls, model_cls, seed, sharpen_by=4.0, **kw):
    torch.manual_seed(seed)
    base = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                attn_implementation="eager")
    base.update(kw)
    cfg = config_cls(**base)
    m = model_cls(cfg).float().eval()
    sharpen(m, sharpen_by)
    return m


def tiny_llama(seed=0, layers=3, heads=4, kv_heads=2, head_dim=16, vocab=256, **kw):
    return build(LlamaConfig, LlamaForCausalLM, seed, vocab_size=vocab, hidden_size=heads * head_dim,
                 num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads, **kw)


def model_classes(config_name, model_name):
    try:
        return getattr(transformers, config_name), getattr(transformers, model_name)
    except AttributeError as e:
        raise unittest.SkipTest(f"{model_name} not in transformers {transformers.__version__}: {e}")


class Capture:
    """Per-layer outputs of a submodule of every attention module (o_proj's input,
    k_proj's / k_norm's output), one chunk per forward."""

    def __init__(self, model, what):
        self.mods = record_kv.attention_modules(model)
        self.what = what
        self.chunks = [[] for _ in self.mods]

    def _target(self, att):
        if self.what == "attn_out":
            return getattr(att, "o_proj", None) or att.dense
        return getattr(att, "k_norm", None) or att.k_proj

    def __enter__(self):
        self.h = []
        for i, att in enumerate(self.mods):
            if self.what == "attn_out":
                hook = (lambda i: lambda mod, args: self.chunks[i].append(args[0][0].float().cpu()))(i)
                self.h.append(self._target(att).register_forward_pre_hook(hook))
            else:
                hook = (lambda i: lambda mod, args, out: self.chunks[i].append(out[0].float().cpu()))(i)
                self.h.append(self._target(att).register_forward_hook(hook))
        return self

    def __exit__(self, *e):
        for h in self.h:
            h.remove()

    def attn_out(self, i):
        """[T, H*d] attention output before o_proj."""
        return torch.cat(self.chunks[i], dim=0).double().numpy()

    def pre_rope_keys(self, i, Hkv, hd):
        """[Hkv, T, d] keys before RoPE: k_proj(x) ([s, Hkv*d]) or k_norm's output
        ([s, Hkv, d] for Qwen3, [Hkv, s, d] for Gemma 3; the tests never use s == Hkv)."""
        def as_shd(c):
            if c.dim() == 2:
                return c.reshape(c.shape[0], Hkv, hd)
            return c.transpose(0, 1) if c.shape[0] == Hkv and c.shape[1] != Hkv else c
        parts = [as_shd(c) for c in self.chunks[i]]
        return torch.cat(parts, dim=0).transpose(0, 1).double().numpy()


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / (np.abs(np.asarray(b)).max() + 1e-30))


class RecordKVTest(unittest.TestCase):
    def check_model(self, name, model, prompt_len=20, new_tokens=12, sample=True, expect=None):
        """Record, write, read back and check (a), (b), (c); `expect` holds the
        attention description the dump must carry."""
        expect = expect or {}
        L, H, Hkv, hd = record_kv.model_shape(model)
        g = torch.Generator().manual_seed(123)
        prompt = torch.randint(0, model.config.vocab_size, (prompt_len,), generator=g).tolist()
        with Capture(model, "attn_out") as oi, Capture(model, "pre_rope") as kp:
            rec = record_kv.record_sequence(model, prompt, new_tokens, sample=sample, seed=7)
        T = prompt_len + new_tokens
        self.assertEqual(len(rec["tokens"]), T)
        self.assertEqual(rec["tokens"][:prompt_len], prompt)
        self.assertEqual(len(oi.chunks[0]), 1 + new_tokens)  # one prefill forward + one per token

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
        np.testing.assert_array_equal(d["tokens"], np.array(rec["tokens"]))
        self.assertEqual(d16["keys"][0].dtype, np.float16)
        self.assertAlmostEqual(a["attn_scale"], expect.get("scale", hd ** -0.5), places=12)
        self.assertEqual(a.get("attn_logit_softcap"), expect.get("softcap"))
        windows = [la.get("sliding_window") for la in d["layer_attrs"]]
        self.assertEqual(windows, expect.get("windows", [None] * L))
        if expect.get("rope", True):
            self.assertIsNone(rec["rope_warning"])
            self.assertEqual(a["rope_style"], expect.get("style", "neox"))
            self.assertEqual(a.get("rotary_dim", hd), expect.get("rotary_dim", hd))
            self.assertIsNotNone(d["rope_inv_freq"])
            if "theta" in expect:
                self.assertEqual(a.get("rope_theta"), expect["theta"])
        else:
            self.assertIsNone(d["rope_inv_freq"])
            self.assertNotIn("rope_theta", a)
            self.assertIn(expect.get("warning", ""), rec["rope_warning"])

        # (a) keys/values are exactly the model's own cache ...
        err = {"a_cache": 0.0}
        for i in range(L):
            k, v = record_kv.cache_layer_kv(rec["cache"], i)
            np.testing.assert_array_equal(d["keys"][i], k[0].float().cpu().numpy())
            np.testing.assert_array_equal(d["values"][i], v[0].float().cpu().numpy())
            np.testing.assert_allclose(d16["keys"][i].astype(np.float32), d["keys"][i], rtol=2e-3, atol=1e-3)
        # ... and the last positions of a teacher-forced forward with the model's default cache
        # (not with dynamic RoPE past the original context: one forward over all tokens uses
        # other frequencies than the step-by-step recording did)
        teacher = expect.get("teacher", True)
        with Capture(model, "attn_out") as tf_out:
            full = model(input_ids=torch.tensor([rec["tokens"]]), use_cache=True)
        for i in range(L if teacher else 0):
            k, v = record_kv.cache_layer_kv(full.past_key_values, i)
            n = k.shape[2]
            self.assertGreater(n, 0)
            err["a_teacher"] = max(err.get("a_teacher", 0.0), rel(d["keys"][i][:, T - n:], k[0].numpy()),
                                   rel(d["values"][i][:, T - n:], v[0].numpy()))
        self.assertLess(err.get("a_teacher", 0.0), 1e-4)

        # (b) attention recomputed from the dump == the attention output the model computed
        err["b_record"] = 0.0
        for i in range(L):
            at = layer_attention(d, i)
            got = attention_output(d["queries"][i], d["keys"][i], d["values"][i], at["scale"], at["softcap"],
                                   at["window"]).transpose(1, 0, 2).reshape(T, H * hd)
            ref = oi.attn_out(i)
            err["b_record"] = max(err["b_record"], rel(got, ref))
            if teacher:
                err["b_teacher"] = max(err.get("b_teacher", 0.0), rel(got, tf_out.attn_out(i)))
            self.assertGreater(np.abs(np.diff(ref, axis=0)).max(), 1e-3)  # position dependent: a real test
            for field, wrong in (("window", None), ("softcap", None), ("scale", hd ** -0.5)):
                if at[field] is not None and at[field] != wrong:  # the attribute must matter here
                    alt = dict(at, **{field: wrong})
                    off = attention_output(d["queries"][i], d["keys"][i], d["values"][i], alt["scale"],
                                           alt["softcap"], alt["window"]).transpose(1, 0, 2).reshape(T, H * hd)
                    self.assertGreater(rel(off, ref), 1e-4, f"layer {i}: ignoring {field} changes nothing")
        self.assertLess(err["b_record"], 1e-5, f"{name}: attention from the dump differs")
        # one forward over all tokens rounds differently from the step-by-step recording
        self.assertLess(err.get("b_teacher", 0.0), 1e-4, f"{name}: attention differs (teacher forcing)")

        # (c) RoPE undo/redo from the dump alone; the undone keys are k_proj(x)
        if expect.get("rope", True):
            err["c_redo"] = err["c_kproj"] = 0.0
            pos = np.arange(T)
            for i in range(L):
                rope = layer_attention(d, i)["rope"]
                keys = d["keys"][i].astype(np.float64)
                undone = rope_rotate(keys, pos, rope, inverse=True)
                err["c_redo"] = max(err["c_redo"], rel(rope_rotate(undone, pos, rope), keys))
                err["c_kproj"] = max(err["c_kproj"], rel(undone, kp.pre_rope_keys(i, Hkv, hd)))
                if rope["rotary_dim"] < hd:  # channels past rotary_dim are stored as projected
                    np.testing.assert_array_equal(undone[..., rope["rotary_dim"]:], keys[..., rope["rotary_dim"]:])
            self.assertLess(err["c_redo"], 1e-6)
            self.assertLess(err["c_kproj"], 1e-5, f"{name}: undone keys differ from k_proj(x)")
        RESULTS.append((name, err))
        return rec, full, d

    # ---------------------------------------------------------------- architectures

    def test_llama_gqa(self):
        self.check_model("llama (GQA 4/2)", tiny_llama(seed=0), expect=dict(theta=10000.0))

    def test_llama_greedy_matches_teacher_forcing(self):
        m = tiny_llama(seed=1, layers=2, heads=8, kv_heads=2, head_dim=8)
        rec, full, _ = self.check_model("llama (greedy, 8/2)", m, prompt_len=9, new_tokens=20, sample=False)
        logits = full.logits[0]
        for t in range(9, len(rec["tokens"])):
            top2 = torch.topk(logits[t - 1], 2).values
            if float(top2[0] - top2[1]) > 1e-4:
                self.assertEqual(rec["tokens"][t], int(logits[t - 1].argmax()), f"position {t}")

    def test_mha_no_gqa(self):
        self.check_model("llama (MHA)", tiny_llama(seed=2, layers=2, heads=2, kv_heads=2, head_dim=32),
                         prompt_len=5, new_tokens=3)

    def test_llama3_rope(self):
        m = tiny_llama(seed=3, **rope_kwargs(LlamaConfig, "llama3", factor=8.0, low_freq_factor=1.0,
                                             high_freq_factor=4.0, original_max_position_embeddings=64))
        rec, _, d = self.check_model("llama3 rope", m, expect=dict(theta=None))
        ratio = d["rope_inv_freq"] / 10000.0 ** (-np.arange(0, 16, 2) / 16)
        self.assertAlmostEqual(ratio[0], 1.0, places=6)  # high frequencies are kept,
        self.assertAlmostEqual(ratio[-1], 1 / 8, places=6)  # low ones divided by the factor

    def test_yarn_rope(self):
        m = tiny_llama(seed=4, **rope_kwargs(LlamaConfig, "yarn", factor=4.0, original_max_position_embeddings=32))
        rec, _, d = self.check_model("llama yarn rope", m, expect=dict(theta=None))
        self.assertAlmostEqual(d["attrs"]["rope_attention_scaling"], 0.1 * np.log(4.0) + 1.0, places=6)

    def test_linear_rope(self):
        m = tiny_llama(seed=5, **rope_kwargs(LlamaConfig, "linear", factor=2.0))
        rec, _, d = self.check_model("llama linear rope", m, expect=dict(theta=None))
        np.testing.assert_allclose(d["rope_inv_freq"], 10000.0 ** (-np.arange(0, 16, 2) / 16) / 2, rtol=1e-6)

    def test_dynamic_rope(self):
        # within the original context the frequencies are the plain ones
        m = tiny_llama(seed=6, **rope_kwargs(LlamaConfig, "dynamic", factor=2.0))
        self.check_model("llama dynamic rope (within)", m, expect=dict(theta=10000.0))
        # beyond it, transformers recomputes them at every step: no single inv_freq undoes the keys
        m = tiny_llama(seed=6, max_position_embeddings=24, **rope_kwargs(LlamaConfig, "dynamic", factor=2.0))
        self.check_model("llama dynamic rope (beyond)", m, prompt_len=16, new_tokens=16,
                         expect=dict(rope=False, teacher=False, warning="frequencies changed at position 24"))

    def test_qwen2_bias(self):
        cfg_cls, model_cls = model_classes("Qwen2Config", "Qwen2ForCausalLM")
        m = build(cfg_cls, model_cls, seed=7, sharpen_by=1.0)
        for att in record_kv.attention_modules(m):
            self.assertIsNotNone(att.q_proj.bias)
            att.q_proj.bias.normal_(0, 0.5)
            att.k_proj.bias.normal_(0, 0.5)
        sharpen(m)
        self.check_model("qwen2 (q/k/v bias)", m, expect=dict(theta=10000.0))

    def test_mistral_sliding_window(self):
        cfg_cls, model_cls = model_classes("MistralConfig", "MistralForCausalLM")
        m = build(cfg_cls, model_cls, seed=8, num_key_value_heads=1, sliding_window=8)
        self.check_model("mistral (1 kv head, window 8)", m, prompt_len=20, new_tokens=12,
                         expect=dict(windows=[8, 8, 8], theta=10000.0))

    def test_qwen3_qk_norm(self):
        cfg_cls, model_cls = model_classes("Qwen3Config", "Qwen3ForCausalLM")
        m = build(cfg_cls, model_cls, seed=9, head_dim=16)
        self.assertIsNotNone(record_kv.attention_modules(m)[0].k_norm)
        self.check_model("qwen3 (q/k norm)", m, expect=dict(theta=10000.0))

    def test_gemma2(self):
        cfg_cls, model_cls = model_classes("Gemma2Config", "Gemma2ForCausalLM")
        m = build(cfg_cls, model_cls, seed=10, head_dim=16, query_pre_attn_scalar=24, attn_logit_softcapping=5.0,
                  final_logit_softcapping=30.0, sliding_window=8)
        self.check_model("gemma2 (scale, softcap, windows)", m, prompt_len=20, new_tokens=12,
                         expect=dict(scale=24 ** -0.5, softcap=5.0, windows=[8, None, 8]))

    def test_gemma3_per_layer_rope(self):
        cfg_cls, model_cls = model_classes("Gemma3TextConfig", "Gemma3ForCausalLM")
        m = build(cfg_cls, model_cls, seed=11, head_dim=16, query_pre_attn_scalar=24, sliding_window=8,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"])
        _, _, d = self.check_model("gemma3 (local/global rope)", m, prompt_len=20, new_tokens=12,
                                   expect=dict(scale=24 ** -0.5, windows=[8, None, 8]))
        # the global layer has its own frequencies, stored as a per-layer override
        self.assertIsNotNone(d["layer_rope_inv_freq"][1])
        self.assertIsNone(d["layer_rope_inv_freq"][0])

    def test_stablelm_partial_rotary(self):
        cfg_cls, model_cls = model_classes("StableLmConfig", "StableLmForCausalLM")
        m = build(cfg_cls, model_cls, seed=12, partial_rotary_factor=0.5)
        self.check_model("stablelm (partial rotary 8/16, neox)", m, expect=dict(rotary_dim=8))

    def test_glm_partial_rotary_gptj(self):
        cfg_cls, model_cls = model_classes("GlmConfig", "GlmForCausalLM")
        m = build(cfg_cls, model_cls, seed=13, head_dim=16, partial_rotary_factor=0.5, pad_token_id=0)
        self.check_model("glm (partial rotary 8/16, gptj)", m, expect=dict(rotary_dim=8, style="gptj"))

    def test_phi_partial_rotary(self):
        cfg_cls, model_cls = model_classes("PhiConfig", "PhiForCausalLM")
        m = build(cfg_cls, model_cls, seed=14, partial_rotary_factor=0.5)
        self.check_model("phi (partial rotary 8/16)", m, expect=dict(rotary_dim=8))

    # ---------------------------------------------------------------- refusals

    def test_unsupported_architecture(self):
        from transformers import GPT2Config, GPT2LMHeadModel

        m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=64))
        with self.assertRaises(record_kv.UnsupportedModel) as cm:
            record_kv.record_sequence(m, [1, 2, 3], 2)
        self.assertIn("GPT2", str(cm.exception))

    def test_refuses_keys_it_cannot_reproduce(self):
        import transformers.models.llama.modeling_llama as ml

        orig = ml.apply_rotary_pos_emb

        def skewed(q, k, cos, sin, *a, **kw):  # a RoPE variant the recorder does not know
            q2, k2 = orig(q, k, cos, sin, *a, **kw)
            return q2, k2 * 1.5

        ml.apply_rotary_pos_emb = skewed
        try:
            with self.assertRaises(record_kv.UnsupportedModel) as cm:
                record_kv.record_sequence(tiny_llama(seed=15, layers=1), [1, 2, 3, 4], 2)
        finally:
            ml.apply_rotary_pos_emb = orig
        self.assertIn("cannot reproduce the cached keys", str(cm.exception))

    def test_window_observer(self):
        obs = hf_attention_probe.WindowObserver()
        allowed = torch.tril(torch.ones(6, 6, dtype=torch.bool)) & ~torch.tril(torch.ones(6, 6, dtype=torch.bool), -3)
        obs.observe(torch.where(allowed, 0.0, -1e9)[None, None], 0, 6, 0)
        self.assertEqual(obs.result(None, 0), 3)  # (t-3, t]
        chunked = torch.zeros(4, 4, dtype=torch.bool)
        chunked[:2, :2] = chunked[2:, 2:] = True
        with self.assertRaises(record_kv.UnsupportedModel):
            hf_attention_probe.WindowObserver().observe(torch.tril(chunked)[None, None], 0, 4, 0)
        self.assertIsNone(hf_attention_probe.WindowObserver().result(None, 0))

    # ---------------------------------------------------------------- CLI

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
                self.assertAlmostEqual(d["attrs"]["attn_scale"], 0.25)

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


def print_results():
    cols = ("a_teacher", "b_record", "b_teacher", "c_redo", "c_kproj")
    print("\nmax relative errors (a: K/V vs cache is exact; a_teacher: vs teacher-forced cache; b: attention "
          "from the dump vs o_proj input; c_redo: RoPE undo+redo; c_kproj: undone keys vs k_proj(x))")
    print(f"{'model':40s} " + " ".join(f"{c:>10s}" for c in cols))
    for name, err in RESULTS:
        print(f"{name:40s} " + " ".join(f"{err[c]:10.2e}" if c in err else f"{'-':>10s}" for c in cols))


if __name__ == "__main__":
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    res = unittest.main(exit=False, verbosity=2).result
    print_results()
    sys.exit(0 if res.wasSuccessful() else 1)
