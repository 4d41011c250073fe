#!/usr/bin/env python3
"""Tests for tools/kvdump.py (numpy + h5py only; standalone unittest script).

If KVLAB_BIN is set and points to an existing binary, also runs
`$KVLAB_BIN inspect <dump>` on a written dump and expects exit 0.
Run: /usr/bin/python3 tests/python/test_kvdump_writer.py
"""

import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from kvdump import layer_attention, read_kvdump, write_kvdump  # noqa: E402


def make(L=3, H=4, Hkv=2, T=10, d=8, seed=0):
    rng = np.random.default_rng(seed)
    K = [rng.standard_normal((Hkv, T, d)).astype(np.float32) for _ in range(L)]
    V = [rng.standard_normal((Hkv, T, d)).astype(np.float32) for _ in range(L)]
    Q = [rng.standard_normal((H, T, d)).astype(np.float32) for _ in range(L)]
    tok = rng.integers(0, 256, T)
    return K, V, Q, tok


class WriterTest(unittest.TestCase):
    def setUp(self):
        self.td = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.td.name, "x.kvdump.h5")

    def tearDown(self):
        self.td.cleanup()

    def test_roundtrip_float16(self):
        K, V, Q, tok = make()
        shape = write_kvdump(self.path, K, V, Q, prompt_len=6, tokens=tok, model="m", text="hello",
                             rope_theta=10000.0, rope_style="neox")
        self.assertEqual(shape, dict(num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8, seq_len=10))
        with h5py.File(self.path, "r") as f:
            a = f.attrs
            self.assertEqual(a["format"], "kvdump")
            self.assertEqual(int(a["version"]), 1)
            for k, v in dict(num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8, prompt_len=6).items():
                self.assertEqual(int(a[k]), v, k)
                self.assertTrue(np.issubdtype(np.asarray(a[k]).dtype, np.integer), k)
            self.assertEqual(a["model"], "m")
            self.assertEqual(a["text"], "hello")
            self.assertEqual(a["rope_style"], "neox")
            self.assertEqual(float(a["rope_theta"]), 10000.0)
            self.assertEqual(f["/layers/0/keys"].dtype, np.float16)
            self.assertEqual(f["/layers/2/queries"].shape, (4, 10, 8))
            self.assertTrue(np.issubdtype(f["/tokens"].dtype, np.integer))
            self.assertEqual(sorted(f["layers"].keys()), ["0", "1", "2"])
        d = read_kvdump(self.path)
        for i in range(3):
            np.testing.assert_array_equal(d["keys"][i], K[i].astype(np.float16))
            np.testing.assert_array_equal(d["values"][i], V[i].astype(np.float16))
            np.testing.assert_array_equal(d["queries"][i], Q[i].astype(np.float16))
        np.testing.assert_array_equal(d["tokens"], tok)
        self.assertEqual(d["attrs"]["prompt_len"], 6)

    def test_roundtrip_float32_exact_no_queries_no_optional(self):
        K, V, _, _ = make(L=2, H=2, Hkv=2, T=5, d=4)
        write_kvdump(self.path, K, V, prompt_len=5, dtype="float32")
        d = read_kvdump(self.path)
        self.assertIsNone(d["queries"])
        self.assertIsNone(d["tokens"])
        for k in ("model", "text", "rope_theta", "rope_style"):
            self.assertNotIn(k, d["attrs"])
        self.assertEqual(d["attrs"]["num_heads"], 2)
        for i in range(2):
            self.assertEqual(d["keys"][i].dtype, np.float32)
            np.testing.assert_array_equal(d["keys"][i], K[i])
            np.testing.assert_array_equal(d["values"][i], V[i])

    def test_float64_input_and_mha(self):
        K, V, Q, tok = make(H=2, Hkv=2)
        write_kvdump(self.path, [k.astype(np.float64) for k in K], V, Q, prompt_len=1, tokens=list(tok),
                     dtype="float64")
        d = read_kvdump(self.path)
        self.assertEqual(d["keys"][0].dtype, np.float64)

    def assertRaisesMsg(self, fragment, fn):
        with self.assertRaises(ValueError) as cm:
            fn()
        self.assertIn(fragment, str(cm.exception))
        self.assertFalse(os.path.exists(self.path), "no file is written on a validation error")
        self.assertFalse(os.path.exists(self.path + ".tmp"))

    def test_validation_errors(self):
        K, V, Q, tok = make()
        w = lambda **kw: write_kvdump(self.path, kw.pop("K", K), kw.pop("V", V), kw.pop("Q", Q),  # noqa: E731
                                      prompt_len=kw.pop("prompt_len", 6), tokens=kw.pop("tokens", tok), **kw)
        self.assertRaisesMsg("layer 1 values", lambda: w(V=[V[0], V[1][:, :9], V[2]]))
        self.assertRaisesMsg("layer 2 keys", lambda: w(K=[K[0], K[1], K[2][:, :, :4]]))
        self.assertRaisesMsg("3 dims", lambda: w(K=[k[0] for k in K]))
        self.assertRaisesMsg("values: expected 3 layers", lambda: w(V=V[:2]))
        self.assertRaisesMsg("queries: expected 3 layers", lambda: w(Q=Q[:1]))
        self.assertRaisesMsg("multiple of num_kv_heads", lambda: w(Q=[q[:3] for q in Q]))
        self.assertRaisesMsg("layer 1 queries", lambda: w(Q=[Q[0], Q[1][:, :, :7], Q[2]]))
        self.assertRaisesMsg("prompt_len", lambda: w(prompt_len=0))
        self.assertRaisesMsg("prompt_len", lambda: w(prompt_len=11))
        self.assertRaisesMsg("tokens", lambda: w(tokens=tok[:9]))
        self.assertRaisesMsg("tokens", lambda: w(tokens=np.full(10, 0.5)))
        self.assertRaisesMsg("rope_style", lambda: w(rope_style="rotary"))
        self.assertRaisesMsg("rope_theta", lambda: w(rope_theta=-1.0))
        self.assertRaisesMsg("dtype", lambda: w(dtype="bfloat16"))
        self.assertRaisesMsg("at least one layer", lambda: w(K=[], V=[], Q=[]))

    def test_non_finite(self):
        K, V, Q, tok = make()
        Kn = [k.copy() for k in K]
        Kn[1][0, 3, 2] = np.nan
        self.assertRaisesMsg("layer 1 keys", lambda: write_kvdump(self.path, Kn, V, Q, prompt_len=3))
        self.assertRaisesMsg("NaN", lambda: write_kvdump(self.path, Kn, V, Q, prompt_len=3))
        Qi = [q.copy() for q in Q]
        Qi[2][1, 0, 0] = np.inf
        self.assertRaisesMsg("layer 2 queries", lambda: write_kvdump(self.path, K, V, Qi, prompt_len=3))
        Vo = [v.copy() for v in V]
        Vo[0][0, 0, 0] = 1e6  # finite in float32, overflows float16
        self.assertRaisesMsg("overflows float16", lambda: write_kvdump(self.path, K, Vo, Q, prompt_len=3))
        write_kvdump(self.path, K, Vo, Q, prompt_len=3, dtype="float32")  # fine in float32
        self.assertEqual(read_kvdump(self.path)["values"][0][0, 0, 0], 1e6)

    def test_attention_attributes(self):
        K, V, Q, _ = make(L=3, d=8)
        inv = [np.array([1.0, 0.1]), np.array([0.5, 0.05]), np.array([1.0, 0.1])]
        write_kvdump(self.path, K, V, Q, prompt_len=6, rope_style="gptj", attn_scale=0.2, attn_logit_softcap=30.0,
                     sliding_window=[4, None, 2], rope_inv_freq=inv, rotary_dim=4,
                     rope_attention_scaling=[1.1, 1.1, 1.0], dtype="float32")
        with h5py.File(self.path, "r") as f:
            a = f.attrs
            self.assertEqual(a["attn_scale"].dtype, np.float64)
            self.assertEqual(float(a["attn_logit_softcap"]), 30.0)
            self.assertEqual(int(a["rotary_dim"]), 4)
            self.assertTrue(np.issubdtype(np.asarray(a["rotary_dim"]).dtype, np.integer))
            self.assertEqual(float(a["rope_attention_scaling"]), 1.1)  # the most common value is the root's
            self.assertEqual(f["rope_inv_freq"].dtype, np.float64)
            np.testing.assert_array_equal(f["rope_inv_freq"][()], inv[0])
            np.testing.assert_array_equal(f["layers/1/rope_inv_freq"][()], inv[1])  # override where different
            self.assertNotIn("rope_inv_freq", f["layers/0"])
            self.assertNotIn("rope_inv_freq", f["layers/2"])
            self.assertEqual([f[f"layers/{i}"].attrs.get("sliding_window") for i in range(3)], [4, None, 2])
            self.assertTrue(np.issubdtype(f["layers/0"].attrs["sliding_window"].dtype, np.integer))
            self.assertEqual(float(f["layers/2"].attrs["rope_attention_scaling"]), 1.0)
            self.assertNotIn("rope_attention_scaling", f["layers/0"].attrs)
            self.assertNotIn("rope_theta", a)
        d = read_kvdump(self.path)
        at = [layer_attention(d, i) for i in range(3)]
        self.assertEqual([x["window"] for x in at], [4, None, 2])
        self.assertEqual({x["scale"] for x in at}, {0.2})
        self.assertEqual({x["softcap"] for x in at}, {30.0})
        self.assertEqual([x["rope"]["attention_scaling"] for x in at], [1.1, 1.1, 1.0])
        for i in range(3):
            np.testing.assert_array_equal(at[i]["rope"]["inv_freq"], inv[i])
            self.assertEqual((at[i]["rope"]["rotary_dim"], at[i]["rope"]["style"]), (4, "gptj"))
        # one array (or one list of numbers) for every layer; rotary_dim follows from it
        write_kvdump(self.path, K, V, Q, prompt_len=6, rope_style="neox", rope_inv_freq=[1.0, 0.2, 0.04],
                     sliding_window=5)
        d = read_kvdump(self.path)
        self.assertEqual(d["attrs"]["rotary_dim"], 6)
        self.assertEqual(d["layer_rope_inv_freq"], [None, None, None])
        self.assertEqual([la["sliding_window"] for la in d["layer_attrs"]], [5, 5, 5])

    def test_attention_defaults_for_older_files(self):
        K, V, Q, _ = make(d=8)
        write_kvdump(self.path, K, V, Q, prompt_len=6, rope_theta=500.0, rope_style="neox")
        at = layer_attention(read_kvdump(self.path), 1)
        self.assertAlmostEqual(at["scale"], 8 ** -0.5)
        self.assertIsNone(at["softcap"])
        self.assertIsNone(at["window"])
        self.assertEqual((at["rope"]["rotary_dim"], at["rope"]["style"], at["rope"]["attention_scaling"]),
                         (8, "neox", 1.0))
        np.testing.assert_allclose(at["rope"]["inv_freq"], 500.0 ** (-np.arange(0, 8, 2) / 8), rtol=1e-15)
        write_kvdump(self.path, K, V, Q, prompt_len=6)
        self.assertIsNone(layer_attention(read_kvdump(self.path), 0)["rope"])

    def test_attention_validation_errors(self):
        K, V, Q, _ = make(L=3, d=8)
        w = lambda **kw: write_kvdump(self.path, K, V, Q, prompt_len=6, **kw)  # noqa: E731
        self.assertRaisesMsg("attn_scale", lambda: w(attn_scale=0.0))
        self.assertRaisesMsg("attn_logit_softcap", lambda: w(attn_logit_softcap=float("nan")))
        self.assertRaisesMsg("sliding_window of layer 1", lambda: w(sliding_window=[4, 0, 4]))
        self.assertRaisesMsg("sliding_window: expected one entry per layer", lambda: w(sliding_window=[4, 4]))
        self.assertRaisesMsg("sliding_window of layer 0", lambda: w(sliding_window=2.5))
        self.assertRaisesMsg("rotary_dim", lambda: w(rotary_dim=5))
        self.assertRaisesMsg("rotary_dim", lambda: w(rotary_dim=10))
        self.assertRaisesMsg("rope_inv_freq", lambda: w(rope_inv_freq=np.array([1.0, 0.1]), rotary_dim=6))
        self.assertRaisesMsg("rope_inv_freq", lambda: w(rope_inv_freq=np.array([1.0, -0.1])))
        self.assertRaisesMsg("rope_inv_freq", lambda: w(rope_inv_freq=np.ones(5)))  # 10 channels > head_dim 8
        self.assertRaisesMsg("rope_inv_freq of layer 2",
                             lambda: w(rope_inv_freq=[np.ones(2), np.ones(2), np.ones(3)]))
        self.assertRaisesMsg("rope_attention_scaling", lambda: w(rope_attention_scaling=[1.0, -1.0, 1.0]))

    def test_reader_rejects_bad_attention_attributes(self):
        K, V, Q, _ = make(L=2, d=8)
        write_kvdump(self.path, K, V, Q, prompt_len=6, rope_inv_freq=np.ones(4))
        with h5py.File(self.path, "a") as f:
            f.attrs["rotary_dim"] = np.int64(6)  # /rope_inv_freq now has the wrong length
        with self.assertRaises(ValueError) as cm:
            read_kvdump(self.path)
        self.assertIn("/rope_inv_freq", str(cm.exception))
        with h5py.File(self.path, "a") as f:
            f.attrs["rotary_dim"] = np.int64(8)
            f["layers/1"].attrs["sliding_window"] = np.int64(0)
        with self.assertRaises(ValueError) as cm:
            read_kvdump(self.path)
        self.assertIn("/layers/1 attribute sliding_window", str(cm.exception))

    def test_kvlab_inspect(self):
        binary = os.environ.get("KVLAB_BIN", "")
        if not binary:
            print("\nSKIP part: KVLAB_BIN is not set; not running `kvlab inspect`")
            return
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            print(f"\nSKIP part: KVLAB_BIN={binary} does not exist (yet); not running `kvlab inspect`")
            return
        K, V, Q, tok = make(L=2, H=4, Hkv=2, T=40, d=16)
        write_kvdump(self.path, K, V, Q, prompt_len=32, tokens=tok, model="test", rope_theta=10000.0,
                     rope_style="neox")
        r = subprocess.run([binary, "inspect", self.path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"kvlab inspect failed:\n{r.stdout}\n{r.stderr}")
        # every optional attention attribute present (per-layer overrides too): still a valid dump
        write_kvdump(self.path, K, V, Q, prompt_len=32, tokens=tok, rope_style="gptj", attn_scale=0.1,
                     attn_logit_softcap=50.0, sliding_window=[8, None], rotary_dim=8,
                     rope_inv_freq=[np.ones(4), np.full(4, 0.5)], rope_attention_scaling=[1.2, 1.0])
        r = subprocess.run([binary, "inspect", self.path], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"kvlab inspect failed:\n{r.stdout}\n{r.stderr}")


if __name__ == "__main__":
    res = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if res.wasSuccessful() else 1)
