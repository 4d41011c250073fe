"""The streaming API, Compressor(spec).new_state(...): the contract as a
decoding loop uses it, checked against closed forms (FP16 is the identity,
KIVI's bit formula), one state per head against a layer state, logits, the
calibration, and misuse (errors, not crashes), also from two threads."""

import threading
import time

import numpy as np
import pytest

import kvlab
from conftest import random_layer

D, P, N = 32, 40, 56


@pytest.fixture(scope="module")
def data():
    return random_layer(kv_heads=2, query_heads=4, tokens=N, head_dim=D, seed=4)


def test_fp16_state_is_the_identity(data):
    k, v, _ = data
    st = kvlab.Compressor("fp16").new_state(head_dim=D, prompt_len=P, max_tokens=N)
    st.prefill(k[0, :P], v[0, :P])
    for t in range(P, N):
        st.append(k[0, t], v[0, t])
    keys, values, present = st.view()
    np.testing.assert_array_equal(keys, k[0])  # the baseline keeps every token as recorded
    np.testing.assert_array_equal(values, v[0])
    assert present.all() and present.shape == (N,)
    assert st.bits() == {"codes": 0, "metadata": 0, "sparse": 0, "lowrank": 0, "fp16": 16 * 2 * N * D,
                         "index": 0, "total": 16 * 2 * N * D}


def test_view_and_bits_follow_every_step(data):
    k, v, _ = data
    c = kvlab.Compressor("kivi:bits=2,group=8,residual=16")
    assert c.spec == "kivi:bits=2,group=8,residual=16" and c.method == "kivi" and c.scope == "block"
    assert c.params == {"bits": "2", "group": "8", "residual": "16", "rotation": "none"}
    st = c.new_state(head_dim=D, prompt_len=P, max_tokens=N)
    st.prefill(k[1, :P], v[1, :P])

    def kivi_bits(t, b=2, g=8, r=16):  # docs/methods.md, kivi
        kq, vq = t // r * r, max(0, t - r)
        return b * D * (kq + vq) + 32 * (D * kq // g + vq * -(-D // g)) + 16 * D * ((t - kq) + (t - vq))

    assert st.bits()["total"] == kivi_bits(P)
    for t in range(P, N):
        st.append(k[1, t], v[1, t])
        keys, values, present = st.view()
        assert keys.shape == values.shape == (t + 1, D) and keys.dtype == np.float32
        assert st.bits()["total"] == kivi_bits(t + 1)
        # The newest R values stay FP16 (as recorded); keys until R have accumulated.
        assert np.array_equal(values[t - 15:], v[1, t - 15:t + 1])
        kq = (t + 1) // 16 * 16
        assert np.array_equal(keys[kq:], k[1, kq:t + 1]) and not np.array_equal(keys[:kq], k[1, :kq])
    assert st.size == len(st) == N


def test_layer_state_equals_one_state_per_head(data):
    k, v, q = data
    c = kvlab.Compressor("gear-2bit")
    layer = c.new_layer_state(num_kv_heads=2, head_dim=D, prompt_len=P, max_tokens=N, layer=1, seed=9,
                              num_layers=3, group_size=2)
    layer.prefill(k[:, :P], v[:, :P], q[:, :P])
    for t in range(P, N):
        layer.append(k[:, t], v[:, t], q[:, t])
    lk, lv, lp = layer.view()
    assert lk.shape == (2, N, D) and lp.shape == (2, N)
    total = 0
    for h in range(2):
        st = c.new_state(head_dim=D, prompt_len=P, max_tokens=N, layer=1, kv_head=h, seed=9, num_layers=3,
                         num_kv_heads=2, group_size=2)
        st.prefill(k[h, :P], v[h, :P], q[2 * h:2 * h + 2, :P])
        for t in range(P, N):
            st.append(k[h, t], v[h, t], q[2 * h:2 * h + 2, t])
        sk, sv, _ = st.view()
        np.testing.assert_array_equal(sk, lk[h])
        np.testing.assert_array_equal(sv, lv[h])
        assert st.bits() == layer.bits(head=h)
        total += st.bits()["total"]
    assert layer.bits()["total"] == total


def test_logits_are_q_times_reconstructed_keys(data):
    k, v, q = data
    st = kvlab.Compressor("kivi-2bit").new_state(head_dim=D, prompt_len=P, max_tokens=N)
    st.prefill(k[0, :P], v[0, :P])
    keys, _, _ = st.view()
    got = st.logits(q[:2, P - 1])
    want = q[:2, P - 1].astype(np.float64) @ keys.astype(np.float64).T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_qjl_has_no_reconstructible_keys_but_estimates_logits(data):
    k, v, q = data
    st = kvlab.Compressor("qjl:sketch=256,value_bits=4,value_group=32,buffer=8").new_state(
        head_dim=D, prompt_len=P, max_tokens=N)
    st.prefill(k[0, :P], v[0, :P])
    keys, values, present = st.view()
    assert keys is None and values.shape == (P, D)
    est = st.logits(q[:1, P - 1])[0]
    exact = q[0, P - 1].astype(np.float64) @ k[0, :P].astype(np.float64).T
    # An unbiased estimator with 256 sketch bits: well correlated with the exact logits.
    assert np.corrcoef(est, exact)[0, 1] > 0.9


def test_dropper_masks_evicted_tokens(data):
    k, v, q = data
    st = kvlab.Compressor("h2o:heavy=0.1,recent=0.1").new_state(head_dim=D, prompt_len=P, max_tokens=N,
                                                                group_size=2)
    st.prefill(k[0, :P], v[0, :P], q[:2, :P])
    for t in range(P, N):
        st.append(k[0, t], v[0, t], q[:2, t])
    keys, values, present = st.view()
    assert 0 < present.sum() < N
    assert not keys[~present].any() and not values[~present].any()
    assert st.bits()["index"] > 0


def test_calibration_is_passed_to_states(data):
    k, v, q = data
    c = kvlab.Compressor("kvquant-nuq3-1pct")
    rope = dict(rope_theta=10000.0, rope_style="neox")
    cal = c.calibrate(k, v, q, **rope)
    assert not cal.empty
    ref = kvlab.compress(c.spec, k, v, prompt_len=P, queries=q, **rope)
    st = c.new_state(head_dim=D, prompt_len=P, max_tokens=N, kv_head=1, num_kv_heads=2, calibration=cal, **rope)
    st.prefill(k[1, :P], v[1, :P])
    for t in range(P, N):
        st.append(k[1, t], v[1, t])
    np.testing.assert_array_equal(st.view()[1], ref.values[1])
    uncalibrated = c.new_state(head_dim=D, prompt_len=P, max_tokens=N, kv_head=1, num_kv_heads=2, **rope)
    uncalibrated.prefill(k[1, :P], v[1, :P])
    assert not np.array_equal(uncalibrated.view()[1], st.view()[1][:P])
    with pytest.raises(ValueError, match=r"calibration: made by 'kvquant:bits=3,outliers=0.01,[^']*' for layer 0 \(2 kv heads"):
        c.new_state(head_dim=D, prompt_len=P, max_tokens=N, layer=1, num_layers=2, calibration=cal, **rope)
    assert kvlab.Compressor("kivi-2bit").calibrate(k, v).empty


def test_misuse_raises_instead_of_crashing(data):
    k, v, q = data
    c = kvlab.Compressor("kivi-2bit")
    st = c.new_state(head_dim=D, prompt_len=P, max_tokens=P + 1)
    with pytest.raises(ValueError, match="append before prefill"):
        st.append(k[0, 0], v[0, 0])
    with pytest.raises(ValueError, match=r"keys: expected shape \[40, 32\] \[P, d\], found \[39, 32\]"):
        st.prefill(k[0, :P - 1], v[0, :P - 1])
    st.prefill(k[0, :P], v[0, :P])
    with pytest.raises(ValueError, match="prefill: the state already holds 40 tokens"):
        st.prefill(k[0, :P], v[0, :P])
    with pytest.raises(ValueError, match=r"key: expected shape \[32\] \[d\], found \[16\]"):
        st.append(k[0, P, :16], v[0, P, :16])
    bad = k[0, P].copy()
    bad[5] = np.inf
    with pytest.raises(ValueError, match=r"key: non-finite value inf at \[5\]"):
        st.append(bad, v[0, P])
    assert len(st) == P  # nothing was fed by the failed calls
    st.append(k[0, P], v[0, P])
    with pytest.raises(ValueError, match=r"the state is full \(max_tokens = 41\)"):
        st.append(k[0, P + 1], v[0, P + 1])
    with pytest.raises(ValueError, match="head 1 is out of range"):
        st.view(head=1)
    with pytest.raises(ValueError, match="needs queries"):
        h2o = kvlab.Compressor("h2o-20pct").new_state(head_dim=D, prompt_len=P, max_tokens=N)
        h2o.prefill(k[0, :P], v[0, :P])
    with pytest.raises(ValueError, match="max_tokens \\(10\\) must be at least prompt_len \\(40\\)"):
        c.new_state(head_dim=D, prompt_len=P, max_tokens=10)
    with pytest.raises(ValueError, match="kv_head 2 is out of range"):
        c.new_state(head_dim=D, prompt_len=P, max_tokens=N, kv_head=2, num_kv_heads=2)
    with pytest.raises(ValueError, match="unknown parameter 'bitz' for kivi \\(did you mean 'bits'\\?\\)"):
        kvlab.Compressor("kivi:bitz=2")


def test_states_run_in_parallel_threads(data):
    """The GIL is released while compressing: states in several threads give
    the same results as one after the other."""
    k, v, q = data
    c = kvlab.Compressor("gear-2bit")

    def feed(h, out):
        st = c.new_state(head_dim=D, prompt_len=P, max_tokens=N, kv_head=h, num_kv_heads=2)
        st.prefill(k[h, :P], v[h, :P])
        for t in range(P, N):
            st.append(k[h, t], v[h, t])
        out[h] = st.view()[1]

    serial, parallel = {}, {}
    for h in range(2):
        feed(h, serial)
    threads = [threading.Thread(target=feed, args=(h, parallel)) for h in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in range(2):
        np.testing.assert_array_equal(serial[h], parallel[h])


def test_a_state_shared_by_two_threads_raises_instead_of_racing():
    """A State is fed by one thread at a time: a call from a second thread
    while the first is inside raises RuntimeError; it never deadlocks or
    corrupts the state (every append that returned was applied)."""
    heads, d, n = 8, 128, 400
    rng = np.random.default_rng(0)
    k = rng.standard_normal((heads, n, d)).astype(np.float32)
    st = kvlab.Compressor("gear-2bit").new_layer_state(num_kv_heads=heads, head_dim=d, prompt_len=64, max_tokens=n)
    st.prefill(k[:, :64], k[:, :64])
    done, appended, refused = threading.Event(), [0], []

    def feeder():
        try:
            t = 64
            while t < n:
                try:
                    st.append(k[:, t], k[:, t])
                except RuntimeError as e:  # the other thread is inside: try again
                    refused.append(str(e))
                    continue
                appended[0] += 1
                t += 1
        finally:
            done.set()

    thread = threading.Thread(target=feeder)
    thread.start()
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        try:
            st.view()
        except RuntimeError as e:
            refused.append(str(e))
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert len(st) == 64 + appended[0] == n
    assert all("in use by another thread" in r for r in refused)
