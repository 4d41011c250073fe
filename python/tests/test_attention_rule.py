"""kvlab.AttentionRule: compress() with a rule equals the CLI replaying a dump
whose attributes (attn_scale, attn_logit_softcap, sliding_window) say the
same, for methods that score tokens by attention; without the rule they keep
other tokens; bad rules raise ValueError."""

import h5py
import numpy as np
import pytest

import kvlab
from conftest import random_layer, read_csv_text, run_cli, write_dump
from test_compress import tensor_error

H, HQ, T, D, P = 2, 4, 96, 32, 64
ROPE = dict(rope_theta=10000.0, rope_style="neox")
SPECS = ["h2o:heavy=0.2,recent=0.1", "snapkv:capacity=32,window=8", "tova:keep=0.5,mode=decode"]


def test_compress_with_a_rule_equals_a_dump_that_describes_it(kvlab_bin, tmp_path):
    layers = [random_layer(H, HQ, T, D, seed=s) for s in (3, 4)]
    dump = write_dump(tmp_path / "capped.kvdump.h5", [l[0] for l in layers], [l[1] for l in layers],
                      [l[2] for l in layers], prompt_len=P, **ROPE)
    with h5py.File(dump, "r+") as f:
        f.attrs["attn_scale"] = 0.125
        f.attrs["attn_logit_softcap"] = 5.0
        f["layers/1"].attrs["sliding_window"] = np.int64(24)
    run_cli(kvlab_bin, "run", "-d", dump, *sum((["-c", s] for s in SPECS), []), "--layers", 1, "--seed", 5,
            "--eval-every", 0, "--csv", tmp_path / "r")
    header, rows = read_csv_text(tmp_path / "r" / "layers.csv")
    blocks = [dict(zip(header, r)) for r in rows]
    k, v, q = layers[1]
    rule = kvlab.AttentionRule(scale=0.125, softcap=5.0, window=24)
    for spec in SPECS:
        canonical = kvlab.canonical(spec)
        r = kvlab.compress(spec, k, v, prompt_len=P, queries=q, seed=5, layer=1, num_layers=2, attention=rule, **ROPE)
        plain = kvlab.compress(spec, k, v, prompt_len=P, queries=q, seed=5, layer=1, num_layers=2, **ROPE)
        assert not np.array_equal(r.present, plain.present), f"{spec}: the rule changed nothing"
        mine = [b for b in blocks if b["spec"] == canonical]
        assert len(mine) == 2 * H
        for b in mine:
            h = int(b["kv_head"])
            x, x_hat = (k, r.keys) if b["tensor"] == "K" else (v, r.values)
            sq_err, sq_norm, max_abs = tensor_error(x[h], x_hat[h])
            assert (float(b["sq_err"]), float(b["sq_norm"]), float(b["max_abs_err"])) == (sq_err, sq_norm, max_abs), \
                f"{spec} head {h} {b['tensor']}"


def test_a_state_takes_the_rule_too():
    k, v, q = random_layer(1, 2, 48, 16, seed=9)
    rule = kvlab.AttentionRule(softcap=3.0, window=8)
    ref = kvlab.compress("h2o:heavy=0.25,recent=0.125", k, v, prompt_len=32, queries=q, attention=rule)
    st = kvlab.Compressor("h2o:heavy=0.25,recent=0.125").new_state(head_dim=16, prompt_len=32, max_tokens=48,
                                                                    group_size=2, attention=rule)
    st.prefill(k[0, :32], v[0, :32], q[:, :32])
    for t in range(32, 48):
        st.append(k[0, t], v[0, t], q[:, t])
    keys, values, present = st.view()
    assert np.array_equal(present, ref.present[0])
    assert np.array_equal(values, ref.values[0])


def test_rule_fields_repr_and_errors():
    r = kvlab.AttentionRule(scale=0.5, window=4)
    assert (r.scale, r.softcap, r.window) == (0.5, None, 4)
    assert r.scale_for(64) == 0.5
    assert kvlab.AttentionRule().scale_for(64) == 0.125
    assert r == kvlab.AttentionRule(scale=0.5, window=4) and r != kvlab.AttentionRule()
    assert repr(r) == "kvlab.AttentionRule(scale=0.5, softcap=None, window=4)"
    for bad, word in ((dict(scale=0.0), "scale"), (dict(scale=float("nan")), "scale"), (dict(softcap=-1.0), "softcap"),
                      (dict(softcap=float("inf")), "softcap"), (dict(window=0), "window")):
        with pytest.raises(ValueError, match=word):
            kvlab.AttentionRule(**bad)
    with pytest.raises(TypeError):
        kvlab.AttentionRule(0.5)  # keyword-only
