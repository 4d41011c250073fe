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
from kvdump import read_kvdump, write_kvdump  # noqa: E402


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


if __name__ == "__main__":
    res = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if res.wasSuccessful() else 1)
