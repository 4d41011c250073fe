"""A fake-quantized attention inside a tiny NumPy model (a 2-layer GQA
decoder with RoPE): kvlab layer states are its KV caches.

* Replay: fed the recorded keys/values, the attention-output error that the
  model measures with State.view() at every decode step equals the CLI's
  steps.csv attn_out_rel for the same tensors written as a dump.
* In the loop (errors compound through the layers): the FP16 state stays
  within FP16 rounding of the exact model, and 4-bit KIVI stays closer to it
  than 2-bit KIVI.
"""

import numpy as np
import pytest

import kvlab
from conftest import read_csv_text, run_cli, write_dump

VOCAB, DM, H, HKV, HD, LAYERS = 97, 64, 4, 2, 16, 2
G = H // HKV
P, N = 48, 80
THETA = 10000.0


def rope(x, pos):
    """NeoX (rotate-half) RoPE of [heads, HD] at position pos."""
    half = HD // 2
    freq = THETA ** (-np.arange(half) / half)
    c, s = np.cos(pos * freq), np.sin(pos * freq)
    a, b = x[:, :half], x[:, half:]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=1)


class TinyModel:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        w = lambda *shape: (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)  # noqa: E731
        self.emb = rng.standard_normal((VOCAB, DM)).astype(np.float32)
        self.layers = [dict(q=w(DM, H * HD), k=w(DM, HKV * HD), v=w(DM, HKV * HD), o=w(H * HD, DM),
                            up=w(DM, 2 * DM), down=w(2 * DM, DM)) for _ in range(LAYERS)]
        self.out = w(DM, VOCAB)

    @staticmethod
    def norm(x):
        return x / np.sqrt(np.mean(x * x) + 1e-6)

    def qkv(self, layer, x, pos):
        w, h = self.layers[layer], self.norm(x)
        q = rope((h @ w["q"]).reshape(H, HD), pos).astype(np.float32)
        k = rope((h @ w["k"]).reshape(HKV, HD), pos).astype(np.float32)
        return q, k, (h @ w["v"]).reshape(HKV, HD).astype(np.float32)

    def finish(self, layer, x, attn):
        w = self.layers[layer]
        x = x + attn.reshape(-1) @ w["o"]
        return (x + np.tanh(self.norm(x) @ w["up"]) @ w["down"]).astype(np.float32)


def attend(q, keys, values, present):
    """softmax(q·Kᵀ/√d) V per query head over the present tokens (GQA)."""
    out = np.empty((H, HD))
    for j in range(H):
        logits = keys[j // G] @ q[j].astype(np.float64) / np.sqrt(HD)
        logits[~present[j // G]] = -np.inf
        p = np.exp(logits - logits.max())
        out[j] = (p / p.sum()) @ values[j // G]
    return out


def record(model, tokens):
    """Teacher-forced exact run: q/k/v of every layer and position, and the logits."""
    q = np.zeros((LAYERS, H, len(tokens), HD), np.float32)
    k = np.zeros((LAYERS, HKV, len(tokens), HD), np.float32)
    v = np.zeros_like(k)
    logits = []
    for pos, tok in enumerate(tokens):
        x = model.emb[tok]
        for l in range(LAYERS):
            q[l, :, pos], k[l, :, pos], v[l, :, pos] = model.qkv(l, x, pos)
            present = np.ones((HKV, pos + 1), bool)
            x = model.finish(l, x, attend(q[l, :, pos], k[l, :, :pos + 1].astype(np.float64),
                                          v[l, :, :pos + 1].astype(np.float64), present))
        logits.append(x @ model.out)
    return q, k, v, np.array(logits)


@pytest.fixture(scope="module")
def recorded():
    model = TinyModel()
    tokens = np.random.default_rng(1).integers(0, VOCAB, N)
    return model, tokens, record(model, tokens)


@pytest.mark.parametrize("spec", ["kivi:bits=2,group=8,residual=16", "h2o:heavy=0.2,recent=0.2"])
def test_attention_error_in_the_model_equals_the_cli(kvlab_bin, tmp_path, recorded, spec):
    _, _, (q, k, v, _) = recorded
    dump = write_dump(tmp_path / "tiny.kvdump.h5", list(k), list(v), list(q), prompt_len=P, rope_theta=THETA,
                      rope_style="neox")
    run_cli(kvlab_bin, "run", "-d", dump, "-c", spec, "--eval-every", 1, "--csv", tmp_path / "r")
    header, rows = read_csv_text(tmp_path / "r" / "steps.csv")
    cli = {int(r[header.index("decode_step")]): float(r[header.index("attn_out_rel")]) for r in rows}

    c = kvlab.Compressor(spec)
    errors = np.zeros((N - P + 1, LAYERS, H))
    for l in range(LAYERS):
        st = c.new_layer_state(num_kv_heads=HKV, head_dim=HD, prompt_len=P, max_tokens=N, layer=l,
                               num_layers=LAYERS, group_size=G, rope_theta=THETA, rope_style="neox")
        st.prefill(k[l, :, :P], v[l, :, :P], q[l, :, :P])
        for step in range(N - P + 1):
            pos = P - 1 + step  # the query measured at this step
            if step > 0:
                st.append(k[l, :, pos], v[l, :, pos], q[l, :, pos])
            keys, values, present = st.view()
            exact = attend(q[l, :, pos], k[l, :, :pos + 1], v[l, :, :pos + 1], np.ones((HKV, pos + 1), bool))
            approx = attend(q[l, :, pos], keys, values, present)
            errors[step, l] = np.linalg.norm(approx - exact, axis=1) / np.linalg.norm(exact, axis=1)
    ours = errors.mean(axis=(1, 2))
    assert sorted(cli) == list(range(N - P + 1))
    np.testing.assert_allclose(ours, [cli[s] for s in range(N - P + 1)], rtol=2e-4, atol=1e-7)
    assert ours[-1] > 1e-3  # the method does lose something: the comparison is not vacuous


def generate_logits(model, tokens, spec):
    """Teacher-forced decoding whose caches are kvlab layer states: the
    compressed attention output feeds the next layer (errors compound)."""
    c = kvlab.Compressor(spec)
    states = [c.new_layer_state(num_kv_heads=HKV, head_dim=HD, prompt_len=P, max_tokens=N, layer=l,
                                num_layers=LAYERS, group_size=G) for l in range(LAYERS)]
    _, kp, vp, _ = record(model, tokens[:P])  # prefill: exact attention within the prompt
    for l, st in enumerate(states):
        st.prefill(kp[l], vp[l])
    logits = []
    for pos in range(P, N):
        x = model.emb[tokens[pos]]
        for l, st in enumerate(states):
            q, k, v = model.qkv(l, x, pos)
            st.append(k, v)
            keys, values, present = st.view()
            x = model.finish(l, x, attend(q, keys, values, present))
        logits.append(x @ model.out)
    return np.array(logits)


def test_errors_compound_less_with_more_bits(recorded):
    model, tokens, (_, _, _, exact) = recorded
    exact = exact[P:]

    def rel(spec):
        got = generate_logits(model, tokens, spec)
        return np.linalg.norm(got - exact) / np.linalg.norm(exact)

    fp16, kivi4, kivi2 = (rel(s) for s in ("fp16", "kivi:bits=4,group=8,residual=8", "kivi:bits=2,group=8,residual=8"))
    assert fp16 < 2e-3
    assert fp16 < kivi4 < kivi2
    assert kivi2 > 10 * fp16
