"""kvlab.compress() against the CLI's replay of the same tensors written as a
dump: per (kv head, tensor) the final cache's squared error, norm and max
error (layers.csv) recomputed from compress()'s reconstruction, and the bit
breakdown (summary.csv), all equal to the last digit; compress() equals a
State fed token by token; threads, dtypes and layouts change nothing."""

import numpy as np
import pytest

import kvlab
from conftest import random_layer, read_csv_text, run_cli, write_dump

H, HQ, T, D, P = 2, 4, 96, 32, 64
ROPE = dict(rope_theta=10000.0, rope_style="neox")
EXTRA_SPECS = ["kivi:bits=2,group=16,residual=32", "snapkv:capacity=32,window=8",
               "pyramidkv:base=snapkv,capacity=32,window=8", "h2o:heavy=0.2,recent=0.1",
               "streaming:sinks=4,window=0.3", "gear:bits=3,group=16,buffer=16,rank=2"]


def all_specs():
    return [p["canonical"] for p in kvlab.presets()] + [kvlab.canonical(s) for s in EXTRA_SPECS]


def ordered_sum(a):
    """Σ of a float64 [T, d] in metrics/tensor_error.cpp's order: channel c of
    a row in lane c mod 8 (sequentially, cumsum), lanes combined pairwise;
    rows summed in blocks of 64 in row order, then the blocks in order."""
    t, d = a.shape
    lanes = np.cumsum(np.pad(a, ((0, 0), (0, -d % 8))).reshape(t, -1, 8), axis=1)[:, -1, :]
    for w in (4, 2, 1):
        lanes = lanes[:, :w] + lanes[:, w:2 * w]
    rows = lanes[:, 0]
    return np.cumsum([np.cumsum(rows[b:b + 64])[-1] for b in range(0, t, 64)])[-1]


def tensor_error(x, x_hat):
    """metrics/tensor_error.cpp in NumPy, with the same rounding: float
    differences, squares in double, summed in the same order."""
    diff = (x - x_hat).astype(np.float32)
    d64, x64 = diff.astype(np.float64), x.astype(np.float64)
    return float(ordered_sum(d64 * d64)), float(ordered_sum(x64 * x64)), float(np.max(np.abs(diff)))


@pytest.fixture(scope="module")
def layers():
    """Two layers; the tests compress layer 1 of 2 with seed 5, so random
    streams and per-layer budgets depend on the layer as in the dump."""
    return [random_layer(H, HQ, T, D, seed=s) for s in (1, 2)]


@pytest.fixture(scope="module")
def cli(kvlab_bin, layers, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compress")
    dump = write_dump(tmp / "layers.kvdump.h5", [l[0] for l in layers], [l[1] for l in layers],
                      [l[2] for l in layers], prompt_len=P, **ROPE)
    specs = all_specs()
    run_cli(kvlab_bin, "run", "-d", dump, *sum((["-c", s] for s in specs), []), "--layers", 1, "--seed", 5,
            "--eval-every", 0, "--csv", tmp / "r")
    summary = dict_rows(*read_csv_text(tmp / "r" / "summary.csv"))
    blocks = dict_rows(*read_csv_text(tmp / "r" / "layers.csv"))
    return {s: ([r for r in summary if r["spec"] == s], [r for r in blocks if r["spec"] == s]) for s in specs}


def dict_rows(header, rows):
    return [dict(zip(header, r)) for r in rows]


def test_every_preset_and_method_equals_the_cli_replay(layers, cli):
    k, v, q = layers[1]
    for spec, (summary, blocks) in cli.items():
        r = kvlab.compress(spec, k, v, prompt_len=P, queries=q, seed=5, layer=1, num_layers=2, **ROPE)
        assert r.spec == spec
        (row,) = summary
        for part in ("codes", "metadata", "sparse", "lowrank", "fp16", "index"):
            assert int(row[f"bits_{part}"]) == r.bits[part], f"{spec}: bits_{part}"
        assert int(row["compressed_bits"]) == r.bits["total"] == sum(b["total"] for b in r.head_bits)
        assert float(row["compression_ratio"]) == r.compression_ratio
        assert len(blocks) == 2 * H
        for b in blocks:
            h = int(b["kv_head"])
            x, x_hat = (k, r.keys) if b["tensor"] == "K" else (v, r.values)
            if x_hat is None:  # QJL: keys are sketches, the CLI leaves their errors empty
                assert b["rel_err"] == b["max_abs_err"] == "", spec
                continue
            sq_err, sq_norm, max_abs = tensor_error(x[h], x_hat[h])
            assert (float(b["sq_err"]), float(b["sq_norm"]), float(b["max_abs_err"])) == (sq_err, sq_norm, max_abs), \
                f"{spec} head {h} {b['tensor']}"
            assert float(b["rel_err"]) == float(np.sqrt(sq_err / sq_norm))
        # Evicted rows are zero, as the contract says (and the errors above count them).
        assert r.present.shape == (H, T) and r.present.dtype == bool
        assert not r.values[~r.present].any()


def stream(spec, k, v, q, **ctx):
    """A State per kv head fed as the replay feeds it: prefill, then token by token."""
    c = kvlab.Compressor(spec)
    keys, values, present = [], [], []
    g = q.shape[0] // k.shape[0]
    for h in range(k.shape[0]):
        st = c.new_state(head_dim=D, prompt_len=P, max_tokens=T, kv_head=h, num_kv_heads=H, group_size=g, **ctx)
        qh = q[h * g:(h + 1) * g]
        st.prefill(k[h, :P], v[h, :P], qh[:, :P])
        for t in range(P, T):
            st.append(k[h, t], v[h, t], qh[:, t])
        assert len(st) == T
        kh, vh, ph = st.view()
        keys.append(kh)
        values.append(vh)
        present.append(ph)
    return np.stack(keys), np.stack(values), np.stack(present)


@pytest.mark.parametrize("spec", ["kivi-2bit", "gear-2bit", "h2o-20pct", "snapkv:capacity=32,window=8"])
def test_compress_equals_a_state_fed_token_by_token(layers, spec):
    k, v, q = layers[0]
    r = kvlab.compress(spec, k, v, prompt_len=P, queries=q, seed=3)
    sk, sv, sp = stream(spec, k, v, q, seed=3)
    np.testing.assert_array_equal(r.keys, sk)
    np.testing.assert_array_equal(r.values, sv)
    np.testing.assert_array_equal(r.present, sp)


def test_threads_change_nothing(layers):
    k, v, q = layers[0]
    for spec in ("gear-2bit", "h2o-20pct", "kvquant-nuq3-1pct"):
        a = kvlab.compress(spec, k, v, P, q, threads=1, **ROPE)
        b = kvlab.compress(spec, k, v, P, q, threads=2, **ROPE)
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_array_equal(a.values, b.values)
        assert a.bits == b.bits


class ArrayLike:
    """Anything with __array__ (as a CPU torch tensor) is accepted."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None):
        return self.a if dtype is None else self.a.astype(dtype)


def test_dtypes_and_layouts_give_the_same_result(layers):
    k, v, q = layers[0]
    ref = kvlab.compress("kivi-2bit", k, v, P, q)
    variants = {
        "float64": (k.astype(np.float64), v.astype(np.float64)),
        "__array__": (ArrayLike(k), ArrayLike(v)),
        "fortran order": (np.asfortranarray(k), np.asfortranarray(v)),
        "slices of a larger array": (np.concatenate([k, k], axis=2)[:, :, :D], np.concatenate([v, v], axis=1)[:, :T]),
        "big-endian": (k.astype(">f4"), v.astype(">f4")),
        "nested lists": (k.tolist(), v.tolist()),
    }
    for name, (kk, vv) in variants.items():
        r = kvlab.compress("kivi-2bit", kk, vv, P, q)
        np.testing.assert_array_equal(r.keys, ref.keys, err_msg=name)
        np.testing.assert_array_equal(r.values, ref.values, err_msg=name)


def test_torch_tensors_are_accepted(layers):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    k, v, q = layers[0]
    ref = kvlab.compress("kivi-2bit", k, v, P)
    r = kvlab.compress("kivi-2bit", torch.from_numpy(k), torch.from_numpy(v), P)
    np.testing.assert_array_equal(r.keys, ref.keys)


def test_bad_arguments_raise_value_or_type_errors(layers):
    k, v, q = layers[0]
    with pytest.raises(ValueError, match=r"prompt_len must be in \[1, T = 96\], found 0"):
        kvlab.compress("kivi-2bit", k, v, prompt_len=0)
    with pytest.raises(ValueError, match=r"values: expected shape \[2, 96, 32\]"):
        kvlab.compress("kivi-2bit", k, v[:, :50])
    with pytest.raises(ValueError, match=r"keys: expected 3 axes \[kv_heads, T, d\], found shape \[96, 32\]"):
        kvlab.compress("kivi-2bit", k[0], v[0])
    with pytest.raises(ValueError, match="3 query heads is not a positive multiple of 2 kv heads"):
        kvlab.compress("kivi-2bit", k, v, queries=q[:3])
    with pytest.raises(ValueError, match="needs queries"):
        kvlab.compress("h2o-20pct", k, v, prompt_len=P)
    with pytest.raises(ValueError, match="undoes RoPE and needs rope_theta"):
        kvlab.compress("kvquant-nuq3-1pct", k, v)
    with pytest.raises(ValueError, match="unknown rope_style 'llama'"):
        kvlab.compress("kvquant-nuq3-1pct", k, v, rope_theta=1e4, rope_style="llama")
    with pytest.raises(ValueError, match="did you mean 'kivi'"):
        kvlab.compress("kivvi", k, v)
    with pytest.raises(ValueError, match=r"layer 2 is out of range \(num_layers = 2"):
        kvlab.compress("kivi-2bit", k, v, layer=2, num_layers=2)
    bad = k.copy()
    bad[1, 7, 3] = np.nan
    with pytest.raises(ValueError, match=r"keys: non-finite value nan at \[1, 7, 3\]"):
        kvlab.compress("kivi-2bit", bad, v)
    with pytest.raises(TypeError, match="keys: expected floating-point values, found dtype int64"):
        kvlab.compress("kivi-2bit", np.ones((2, 4, 8), dtype=np.int64), np.ones((2, 4, 8)))
