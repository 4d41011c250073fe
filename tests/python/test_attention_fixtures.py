#!/usr/bin/env python3
"""Tests for tools/kvdump_reference.py and tools/make_attention_fixtures.py
(numpy + h5py only; standalone unittest script).

The reference is checked against formulations written differently on purpose:
RoPE as multiplication by complex exponentials, attention with einsum and a
mask built by explicit loops, plus closed forms (a window of 1 attends only to
itself, a window wider than the sequence is full attention, soft-capped logits
stay inside (-c, c), rotation preserves pair norms times the scaling). If
KVLAB_BIN is set, `kvlab inspect` must accept the fixtures (a reader that does
not know the optional attributes ignores them).
Run: /usr/bin/python3 tests/python/test_attention_fixtures.py
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
import make_attention_fixtures as fx  # noqa: E402
from kvdump import layer_attention, read_kvdump  # noqa: E402
from kvdump_reference import attention_allowed, attention_logits, rope_rotate  # noqa: E402


def rope_complex(x, positions, inv_freq, rotary_dim, style, a):
    """RoPE as z * a * exp(i * position * inv_freq) on complex pairs."""
    x = np.asarray(x, dtype=np.float64)
    half = rotary_dim // 2
    i1, i2 = (np.arange(half), np.arange(half) + half) if style == "neox" else \
        (np.arange(0, rotary_dim, 2), np.arange(1, rotary_dim, 2))
    z = (x[..., i1] + 1j * x[..., i2]) * a * np.exp(1j * np.outer(positions, inv_freq))
    y = x.copy()
    y[..., i1], y[..., i2] = z.real, z.imag
    return y


def loop_mask(T, window):
    m = np.zeros((T, T), dtype=bool)
    for t in range(T):
        for j in range(T):
            m[t, j] = j <= t and (window is None or t - j < window)
    return m


def einsum_attention(q, k, v, scale, softcap, window):
    H, T, _ = q.shape
    kr = np.repeat(k, H // k.shape[0], axis=0)
    vr = np.repeat(v, H // v.shape[0], axis=0)
    s = np.einsum("htd,hjd->htj", q, kr) * scale
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    s = np.where(loop_mask(T, window)[None], s, -np.inf)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return w, np.einsum("htj,hjd->htd", w, vr)


class ReferenceTest(unittest.TestCase):
    def test_rope_matches_complex_form(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(3, 9, 10))
        pos = np.arange(9) + 5
        for style in ("neox", "gptj"):
            rope = dict(inv_freq=np.array([1.1, 0.3, 0.07]), rotary_dim=6, style=style, attention_scaling=1.3)
            y = rope_rotate(x, pos, rope)
            np.testing.assert_allclose(y, rope_complex(x, pos, rope["inv_freq"], 6, style, 1.3), rtol=0, atol=1e-12)
            np.testing.assert_array_equal(y[..., 6:], x[..., 6:])  # past rotary_dim: untouched
            np.testing.assert_allclose(rope_rotate(y, pos, rope, inverse=True), x, rtol=0, atol=1e-12)
        # the two pairings differ
        a = rope_rotate(x, pos, dict(rope, style="neox"))
        b = rope_rotate(x, pos, dict(rope, style="gptj"))
        self.assertGreater(np.abs(a - b).max(), 0.1)

    def test_rope_is_relative(self):
        """q.k after RoPE depends only on the distance (times a^2)."""
        rng = np.random.default_rng(2)
        q, k = rng.normal(size=8), rng.normal(size=8)
        rope = dict(inv_freq=np.array([1.0, 0.1, 0.01, 0.001]), rotary_dim=8, style="gptj", attention_scaling=1.5)
        dots = [rope_rotate(q[None], [t + 3], rope)[0] @ rope_rotate(k[None], [t], rope)[0] for t in (0, 7, 40)]
        np.testing.assert_allclose(dots, dots[0], rtol=1e-12)
        self.assertNotAlmostEqual(dots[0], 1.5 ** 2 * (q @ k))

    def test_window_convention(self):
        # (t - W, t]: W positions including t
        np.testing.assert_array_equal(attention_allowed(np.arange(6), np.arange(6), 3), loop_mask(6, 3))
        np.testing.assert_array_equal(attention_allowed(np.arange(6), np.arange(6), None), loop_mask(6, None))
        self.assertEqual(int(attention_allowed([5], np.arange(6), 3).sum()), 3)

    def test_softcap_after_scale(self):
        q, k = np.array([[3.0, 0.0]]), np.array([[2.0, 0.0]])
        self.assertAlmostEqual(float(attention_logits(q, k, 0.5, 2.0)[0, 0]), 2.0 * np.tanh(3.0 / 2.0))


class FixtureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.td = tempfile.TemporaryDirectory()
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_attention_fixtures.py"),
                            "--out", cls.td.name], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.paths = {s: os.path.join(cls.td.name, f"attention-{s}.kvdump.h5") for s in ("neox", "gptj")}

    @classmethod
    def tearDownClass(cls):
        cls.td.cleanup()

    def load(self, style):
        d = read_kvdump(self.paths[style])
        with h5py.File(self.paths[style], "r") as f:
            ref = {n: f["reference"][n][()] for n in f["reference"]}
        return d, ref

    def test_attributes_resolve(self):
        d, _ = self.load("gptj")
        self.assertEqual(d["attrs"]["rope_style"], "gptj")
        at = [layer_attention(d, i) for i in range(fx.L)]
        self.assertEqual([a["window"] for a in at], fx.WINDOWS)
        self.assertEqual([a["rope"]["attention_scaling"] for a in at], fx.SCALINGS)
        self.assertEqual({a["scale"] for a in at}, {fx.SCALE})
        self.assertEqual({a["softcap"] for a in at}, {fx.SOFTCAP})
        np.testing.assert_array_equal(at[1]["rope"]["inv_freq"], fx.INV_FREQ_LAYER1)
        np.testing.assert_array_equal(at[3]["rope"]["inv_freq"], fx.INV_FREQ)
        with h5py.File(self.paths["gptj"], "r") as f:  # storage: root + overrides only where different
            self.assertEqual(f["rope_inv_freq"].dtype, np.float64)
            self.assertEqual(sorted(n for n in f["layers"] if "rope_inv_freq" in f[f"layers/{n}"]), ["1"])
            self.assertNotIn("sliding_window", f["layers/1"].attrs)
            self.assertEqual(f["layers/2"].attrs["rope_attention_scaling"], 1.0)

    def test_references_independently(self):
        for style in ("neox", "gptj"):
            d, ref = self.load(style)
            pos = np.arange(fx.T)
            for i in range(fx.L):
                at = layer_attention(d, i)
                r = at["rope"]
                k, q, v = (d[n][i].astype(np.float64) for n in ("keys", "queries", "values"))
                redo_k = rope_complex(ref["pre_rope_keys"][i], pos, r["inv_freq"], r["rotary_dim"], style,
                                      r["attention_scaling"])
                np.testing.assert_allclose(redo_k, k, rtol=0, atol=1e-6)
                redo_q = rope_complex(ref["pre_rope_queries"][i], pos, r["inv_freq"], r["rotary_dim"], style,
                                      r["attention_scaling"])
                np.testing.assert_allclose(redo_q, q, rtol=0, atol=1e-6)
                w, out = einsum_attention(q, k, v, fx.SCALE, fx.SOFTCAP, fx.WINDOWS[i])
                np.testing.assert_allclose(ref["attention_weights"][i], w, rtol=0, atol=1e-12)
                np.testing.assert_allclose(ref["attention_output"][i], out, rtol=0, atol=1e-12)
                finite = np.isfinite(ref["logits"][i])
                np.testing.assert_array_equal(finite[0], loop_mask(fx.T, fx.WINDOWS[i]))
                self.assertLess(np.abs(ref["logits"][i][finite]).max(), fx.SOFTCAP)

    def test_closed_forms(self):
        d, ref = self.load("neox")
        np.testing.assert_allclose(ref["attention_weights"][2], np.broadcast_to(np.eye(fx.T), (fx.H, fx.T, fx.T)))
        full, _ = einsum_attention(*(d[n][3].astype(np.float64) for n in ("queries", "keys", "values")),
                                   fx.SCALE, fx.SOFTCAP, None)
        np.testing.assert_allclose(ref["attention_weights"][3], full, atol=1e-15)
        # the attributes matter on this data: ignoring any one changes the weights a lot
        q, k, v = (d[n][0].astype(np.float64) for n in ("queries", "keys", "values"))
        for wrong in ((8 ** -0.5, fx.SOFTCAP, 4), (fx.SCALE, None, 4), (fx.SCALE, fx.SOFTCAP, None)):
            self.assertGreater(np.abs(einsum_attention(q, k, v, *wrong)[0] - ref["attention_weights"][0]).max(), 0.01)
        # pair norms scale by attention_scaling: |RoPE(x)| per pair = a |x|
        pk, kk = ref["pre_rope_keys"][0], d["keys"][0].astype(np.float64)
        np.testing.assert_allclose(np.hypot(kk[..., :3], kk[..., 3:6]), 1.25 * np.hypot(pk[..., :3], pk[..., 3:6]),
                                   rtol=1e-6)

    def test_kvlab_inspect(self):
        binary = os.environ.get("KVLAB_BIN", "")
        if not (binary and os.path.isfile(binary) and os.access(binary, os.X_OK)):
            print("\nSKIP part: KVLAB_BIN is not set or not built; not running `kvlab inspect`")
            return
        for path in self.paths.values():
            r = subprocess.run([binary, "inspect", path], capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, f"kvlab inspect {path}:\n{r.stdout}\n{r.stderr}")


if __name__ == "__main__":
    res = unittest.main(exit=False, verbosity=2).result
    sys.exit(0 if res.wasSuccessful() else 1)
