"""Write and read kvdump v1 files (docs/dump-format.md).

Dependencies: numpy and h5py only (no PyTorch), so the writer can be tested in
CI and used by any recorder.

    from kvdump import write_kvdump, read_kvdump
    write_kvdump("x.kvdump.h5", keys, values, queries, prompt_len=384,
                 tokens=ids, model="tiny-lm", rope_theta=10000.0, rope_style="neox")

keys / values: one array per layer, shape [num_kv_heads, seq_len, head_dim]
(keys as cached, i.e. after RoPE); queries: one array per layer, shape
[num_heads, seq_len, head_dim] (after RoPE, the query of every position).

Optional attention description (docs/dump-format.md, "Attention and RoPE"):
attn_scale, attn_logit_softcap, sliding_window (one int/None for every layer
or a list per layer), rope_inv_freq (one array, or a list per layer: the most
common one goes to /rope_inv_freq, the others to /layers/L/rope_inv_freq),
rotary_dim, rope_attention_scaling (a float or a list per layer).

Everything is validated before the file is opened; problems raise ValueError
naming the layer/dataset and what was expected vs. found. The file is written to
a temporary name and renamed, so a failure never leaves a half-written dump.
"""

from __future__ import annotations

import os

import numpy as np

FORMAT = "kvdump"
VERSION = 1
_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
_ROPE_STYLES = ("neox", "gptj")


def _as_array(x, what):
    """Accept numpy arrays and anything with .numpy()/__array__ (e.g. CPU torch tensors)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach()
        if hasattr(x, "float") and str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        x = x.cpu().numpy()
        return x
    try:
        return np.asarray(x)
    except Exception as e:  # pragma: no cover - defensive
        raise ValueError(f"{what}: cannot convert {type(x).__name__} to an array: {e}") from e


def _check_float_array(a, what):
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected a numeric array, found dtype {a.dtype}")


def _check_finite(a, what, store_dtype):
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{what}: {bad} non-finite value(s) (NaN/Inf), first at index {idx}")
    if store_dtype != np.float64:
        lim = float(np.finfo(store_dtype).max)
        amax = float(np.max(np.abs(a))) if a.size else 0.0
        if amax > lim:
            raise ValueError(
                f"{what}: max |x| = {amax:.6g} overflows {np.dtype(store_dtype).name} "
                f"(max {lim:.6g}); write with dtype='float32'")


def _validate(keys, values, queries, prompt_len, tokens, dtype, rope_theta, rope_style):
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}, found {dtype!r}")
    store = _DTYPES[dtype]
    if not isinstance(keys, (list, tuple)) or not isinstance(values, (list, tuple)):
        raise ValueError("keys and values must be lists (one array per layer)")
    nl = len(keys)
    if nl == 0:
        raise ValueError("keys: expected at least one layer, found 0")
    if len(values) != nl:
        raise ValueError(f"values: expected {nl} layers (as keys), found {len(values)}")
    if queries is not None:
        if not isinstance(queries, (list, tuple)):
            raise ValueError("queries must be a list (one array per layer) or None")
        if len(queries) != nl:
            raise ValueError(f"queries: expected {nl} layers (as keys), found {len(queries)}")

    K = [_as_array(k, f"layer {i} keys") for i, k in enumerate(keys)]
    V = [_as_array(v, f"layer {i} values") for i, v in enumerate(values)]
    Q = None if queries is None else [_as_array(q, f"layer {i} queries") for i, q in enumerate(queries)]

    k0 = K[0]
    if k0.ndim != 3:
        raise ValueError(f"layer 0 keys: expected 3 dims [num_kv_heads, seq_len, head_dim], "
                         f"found shape {tuple(k0.shape)}")
    hkv, T, d = (int(s) for s in k0.shape)
    if hkv < 1 or T < 1 or d < 1:
        raise ValueError(f"layer 0 keys: every dimension must be >= 1, found shape {tuple(k0.shape)}")
    for i in range(nl):
        for name, a in (("keys", K[i]), ("values", V[i])):
            what = f"layer {i} {name} (/layers/{i}/{name})"
            if a.shape != (hkv, T, d):
                raise ValueError(f"{what}: expected shape {(hkv, T, d)} [num_kv_heads, seq_len, head_dim], "
                                 f"found {tuple(a.shape)}")
            _check_float_array(a, what)
    H = hkv
    if Q is not None:
        q0 = Q[0]
        if q0.ndim != 3:
            raise ValueError(f"layer 0 queries: expected 3 dims [num_heads, seq_len, head_dim], "
                             f"found shape {tuple(q0.shape)}")
        H = int(q0.shape[0])
        if H < 1 or H % hkv != 0:
            raise ValueError(f"layer 0 queries: num_heads={H} must be a positive multiple of "
                             f"num_kv_heads={hkv}")
        for i in range(nl):
            what = f"layer {i} queries (/layers/{i}/queries)"
            if Q[i].shape != (H, T, d):
                raise ValueError(f"{what}: expected shape {(H, T, d)} [num_heads, seq_len, head_dim], "
                                 f"found {tuple(Q[i].shape)}")
            _check_float_array(Q[i], what)

    if isinstance(prompt_len, bool) or not isinstance(prompt_len, (int, np.integer)):
        raise ValueError(f"prompt_len: expected an integer, found {type(prompt_len).__name__}")
    if not 1 <= int(prompt_len) <= T:
        raise ValueError(f"prompt_len: expected 1 <= prompt_len <= seq_len={T}, found {prompt_len}")

    tok = None
    if tokens is not None:
        tok = _as_array(tokens, "tokens")
        if tok.ndim != 1 or tok.shape[0] != T:
            raise ValueError(f"tokens: expected shape ({T},) [seq_len], found {tuple(tok.shape)}")
        if tok.dtype.kind not in "iu":
            if tok.dtype.kind == "f" and np.all(np.isfinite(tok)) and np.all(tok == np.round(tok)):
                tok = tok.astype(np.int64)
            else:
                raise ValueError(f"tokens: expected integers, found dtype {tok.dtype}")
        tok = tok.astype(np.int64)

    if rope_style is not None and rope_style not in _ROPE_STYLES:
        raise ValueError(f"rope_style: expected one of {_ROPE_STYLES}, found {rope_style!r}")
    if rope_theta is not None:
        try:
            th = float(rope_theta)
        except (TypeError, ValueError):
            raise ValueError(f"rope_theta: expected a number, found {rope_theta!r}") from None
        if not np.isfinite(th) or th <= 0:
            raise ValueError(f"rope_theta: expected a positive finite number, found {rope_theta!r}")

    # Finiteness (and no overflow in the storage type) last: it touches all data.
    for i in range(nl):
        _check_finite(K[i], f"layer {i} keys (/layers/{i}/keys)", store)
        _check_finite(V[i], f"layer {i} values (/layers/{i}/values)", store)
        if Q is not None:
            _check_finite(Q[i], f"layer {i} queries (/layers/{i}/queries)", store)
    return K, V, Q, tok, dict(num_layers=nl, num_heads=H, num_kv_heads=hkv, head_dim=d, seq_len=T)


def _positive_float(x, what):
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, found {x!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{what}: expected a positive finite number, found {x!r}")
    return v


def _per_layer(x, nl, what):
    """One value for every layer, or a list with one entry per layer."""
    if isinstance(x, (list, tuple)):
        if len(x) != nl:
            raise ValueError(f"{what}: expected one entry per layer ({nl}), found {len(x)}")
        return list(x)
    return [x] * nl


def _most_common(items, key):
    """The item whose key occurs most often (ties: the earliest), so that the
    root holds what most layers use and overrides stay few."""
    counts = {}
    for it in items:
        counts[key(it)] = counts.get(key(it), 0) + 1
    best = max(counts.values())
    return next(it for it in items if counts[key(it)] == best)


def _validate_attention(nl, d, attn_scale, attn_logit_softcap, sliding_window, rope_inv_freq, rotary_dim,
                        rope_attention_scaling):
    """Check the optional attention description and split per-layer lists into
    a root value plus per-layer overrides. Returns a dict for _write_attention."""
    out = dict(attn_scale=None, attn_logit_softcap=None, windows=[None] * nl, rotary_dim=None,
               inv_root=None, inv_layers=[None] * nl, a_root=None, a_layers=[None] * nl)
    if attn_scale is not None:
        out["attn_scale"] = _positive_float(attn_scale, "attn_scale")
    if attn_logit_softcap is not None:
        out["attn_logit_softcap"] = _positive_float(attn_logit_softcap, "attn_logit_softcap")
    for i, w in enumerate(_per_layer(sliding_window, nl, "sliding_window")):
        if w is None:
            continue
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or int(w) < 1:
            raise ValueError(f"sliding_window of layer {i}: expected a positive integer or None, found {w!r}")
        out["windows"][i] = int(w)

    if rotary_dim is not None:
        if isinstance(rotary_dim, bool) or not isinstance(rotary_dim, (int, np.integer)) \
                or not 2 <= int(rotary_dim) <= d or int(rotary_dim) % 2:
            raise ValueError(f"rotary_dim: expected an even integer in [2, head_dim={d}], found {rotary_dim!r}")
        out["rotary_dim"] = int(rotary_dim)
    if rope_inv_freq is not None:
        if isinstance(rope_inv_freq, (list, tuple)) and len(rope_inv_freq) and np.ndim(rope_inv_freq[0]) == 0:
            rope_inv_freq = np.asarray(rope_inv_freq, dtype=np.float64)  # one list of numbers: all layers
        invs = []
        for i, f in enumerate(_per_layer(rope_inv_freq, nl, "rope_inv_freq")):
            what = "rope_inv_freq" if not isinstance(rope_inv_freq, (list, tuple)) else f"rope_inv_freq of layer {i}"
            a = np.asarray(_as_array(f, what), dtype=np.float64)
            if a.ndim != 1 or a.size < 1:
                raise ValueError(f"{what}: expected a 1-D array [rotary_dim/2], found shape {tuple(a.shape)}")
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise ValueError(f"{what}: expected positive finite frequencies")
            invs.append(a)
        rd = out["rotary_dim"] or 2 * invs[0].size
        if rd > d:
            raise ValueError(f"rope_inv_freq: {invs[0].size} frequencies rotate {rd} channels, more than "
                             f"head_dim {d}")
        for i, a in enumerate(invs):
            if 2 * a.size != rd:
                raise ValueError(f"rope_inv_freq of layer {i}: expected rotary_dim/2 = {rd // 2} frequencies, "
                                 f"found {a.size}")
        out["rotary_dim"] = rd
        root = _most_common(invs, lambda a: a.tobytes())
        out["inv_root"] = root
        out["inv_layers"] = [None if np.array_equal(a, root) else a for a in invs]
    if rope_attention_scaling is not None:
        scs = [_positive_float(x, f"rope_attention_scaling of layer {i}")
               for i, x in enumerate(_per_layer(rope_attention_scaling, nl, "rope_attention_scaling"))]
        root = _most_common(scs, lambda x: x)
        out["a_root"] = root
        out["a_layers"] = [None if x == root else x for x in scs]
    return out


def _write_attention(f, att):
    a = f.attrs
    if att["attn_scale"] is not None:
        a["attn_scale"] = np.float64(att["attn_scale"])
    if att["attn_logit_softcap"] is not None:
        a["attn_logit_softcap"] = np.float64(att["attn_logit_softcap"])
    if att["rotary_dim"] is not None:
        a["rotary_dim"] = np.int64(att["rotary_dim"])
    if att["inv_root"] is not None:
        f.create_dataset("rope_inv_freq", data=att["inv_root"])
    if att["a_root"] is not None:
        a["rope_attention_scaling"] = np.float64(att["a_root"])
    for i in range(len(att["windows"])):
        g = f[f"layers/{i}"]
        if att["windows"][i] is not None:
            g.attrs["sliding_window"] = np.int64(att["windows"][i])
        if att["inv_layers"][i] is not None:
            g.create_dataset("rope_inv_freq", data=att["inv_layers"][i])
        if att["a_layers"][i] is not None:
            g.attrs["rope_attention_scaling"] = np.float64(att["a_layers"][i])


def write_kvdump(path, keys, values, queries=None, *, prompt_len, tokens=None, model="", text="",
                 rope_theta=None, rope_style=None, dtype="float16", attn_scale=None, attn_logit_softcap=None,
                 sliding_window=None, rope_inv_freq=None, rotary_dim=None, rope_attention_scaling=None):
    """Validate and write one kvdump v1 file. Returns the shape dict
    {num_layers, num_heads, num_kv_heads, head_dim, seq_len}.

    num_heads is taken from the queries; without queries it is written as
    num_kv_heads (no GQA information is available then).
    """
    K, V, Q, tok, shape = _validate(keys, values, queries, prompt_len, tokens, dtype,
                                    rope_theta, rope_style)
    att = _validate_attention(shape["num_layers"], shape["head_dim"], attn_scale, attn_logit_softcap,
                              sliding_window, rope_inv_freq, rotary_dim, rope_attention_scaling)
    import h5py  # imported late so that validation errors do not need h5py

    store = _DTYPES[dtype]
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            a = f.attrs
            a["format"] = FORMAT
            a["version"] = np.int64(VERSION)
            for k in ("num_layers", "num_heads", "num_kv_heads", "head_dim"):
                a[k] = np.int64(shape[k])
            a["prompt_len"] = np.int64(prompt_len)
            if model:
                a["model"] = str(model)
            if text:
                a["text"] = str(text)
            if rope_theta is not None:
                a["rope_theta"] = np.float64(rope_theta)
            if rope_style is not None:
                a["rope_style"] = str(rope_style)
            layers = f.create_group("layers")
            for i in range(shape["num_layers"]):
                g = layers.create_group(str(i))
                g.create_dataset("keys", data=np.ascontiguousarray(K[i], dtype=store))
                g.create_dataset("values", data=np.ascontiguousarray(V[i], dtype=store))
                if Q is not None:
                    g.create_dataset("queries", data=np.ascontiguousarray(Q[i], dtype=store))
            if tok is not None:
                f.create_dataset("tokens", data=tok)
            _write_attention(f, att)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return shape


def _attr(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_kvdump(path, *, as_float32=False):
    """Read a whole kvdump (small files only: tests, inspection).

    Returns {"attrs": dict, "keys": [..], "values": [..], "queries": [..] or None,
    "tokens": array or None}. Validates the v1 structure and raises ValueError
    on the first violation.
    """
    import h5py

    path = os.fspath(path)
    with h5py.File(path, "r") as f:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: root attribute format: expected 'kvdump', found {attrs.get('format')!r}")
        if attrs.get("version") != VERSION:
            raise ValueError(f"{path}: root attribute version: expected 1, found {attrs.get('version')!r}")
        for k in ("num_layers", "num_heads", "num_kv_heads", "head_dim", "prompt_len"):
            if k not in attrs:
                raise ValueError(f"{path}: missing root attribute {k}")
        nl, H, Hkv, d = (int(attrs[k]) for k in ("num_layers", "num_heads", "num_kv_heads", "head_dim"))
        if Hkv < 1 or H % Hkv:
            raise ValueError(f"{path}: num_heads={H} is not a multiple of num_kv_heads={Hkv}")
        conv = (lambda x: x.astype(np.float32)) if as_float32 else (lambda x: x)
        has_q = "/layers/0/queries" in f
        keys, values = [], []
        queries = [] if has_q else None
        T = None
        for i in range(nl):
            specs = [("keys", keys, Hkv), ("values", values, Hkv)]
            if has_q:
                specs.append(("queries", queries, H))
            elif f"/layers/{i}/queries" in f:
                raise ValueError(f"{path}: /layers/{i}/queries present but /layers/0/queries missing")
            for name, lst, heads in specs:
                p = f"/layers/{i}/{name}"
                if p not in f:
                    raise ValueError(f"{path}: dataset {p} missing")
                arr = f[p][()]
                if T is None:
                    T = arr.shape[1] if arr.ndim == 3 else -1
                if arr.shape != (heads, T, d):
                    raise ValueError(f"{path}: {p}: expected shape {(heads, T, d)}, found {arr.shape}")
                lst.append(conv(arr))
        tokens = f["/tokens"][()] if "/tokens" in f else None
        if tokens is not None and tokens.shape != (T,):
            raise ValueError(f"{path}: /tokens: expected shape ({T},), found {tokens.shape}")
        if not 1 <= int(attrs["prompt_len"]) <= T:
            raise ValueError(f"{path}: prompt_len={attrs['prompt_len']} outside [1, {T}]")
        inv_root = f["/rope_inv_freq"][()] if "/rope_inv_freq" in f else None
        layer_attrs = [{k: _attr(v) for k, v in f[f"/layers/{i}"].attrs.items()} for i in range(nl)]
        layer_inv = [f[f"/layers/{i}/rope_inv_freq"][()] if f"/layers/{i}/rope_inv_freq" in f else None
                     for i in range(nl)]
    d = {"attrs": attrs, "keys": keys, "values": values, "queries": queries, "tokens": tokens,
         "rope_inv_freq": inv_root, "layer_attrs": layer_attrs, "layer_rope_inv_freq": layer_inv}
    _check_attention(path, d)
    return d


def _check_attention(path, d):
    """Validate the optional attention description of a read dump (same rules as docs/dump-format.md)."""
    a, hd = d["attrs"], int(d["attrs"]["head_dim"])
    for k in ("attn_scale", "attn_logit_softcap", "rope_attention_scaling"):
        if k in a:
            _positive_float(a[k], f"{path}: root attribute {k}")
    rd = int(a.get("rotary_dim", hd))
    if rd < 2 or rd > hd or rd % 2:
        raise ValueError(f"{path}: root attribute rotary_dim: expected an even integer in [2, {hd}], found {rd}")
    invs = [("/rope_inv_freq", d["rope_inv_freq"])]
    invs += [(f"/layers/{i}/rope_inv_freq", x) for i, x in enumerate(d["layer_rope_inv_freq"])]
    for name, x in invs:
        if x is not None and (x.shape != (rd // 2,) or not np.all(np.isfinite(x)) or np.any(x <= 0)):
            raise ValueError(f"{path}: {name}: expected {rd // 2} positive frequencies (rotary_dim/2), "
                             f"found shape {x.shape}")
    for i, la in enumerate(d["layer_attrs"]):
        if "sliding_window" in la and not (isinstance(la["sliding_window"], int) and la["sliding_window"] >= 1):
            raise ValueError(f"{path}: /layers/{i} attribute sliding_window: expected a positive integer, "
                             f"found {la['sliding_window']!r}")
        if "rope_attention_scaling" in la:
            _positive_float(la["rope_attention_scaling"], f"{path}: /layers/{i} attribute rope_attention_scaling")


def layer_attention(d, layer):
    """What attention in `layer` of a read dump (read_kvdump) is, defaults resolved:
    dict(scale, softcap, window, rope) where rope is None or
    dict(inv_freq [rotary_dim/2] float64, rotary_dim, style, attention_scaling)."""
    a, la = d["attrs"], d["layer_attrs"][layer]
    hd = int(a["head_dim"])
    rd = int(a.get("rotary_dim", hd))
    inv = d["layer_rope_inv_freq"][layer]
    if inv is None:
        inv = d["rope_inv_freq"]
    if inv is None and "rope_theta" in a:
        inv = float(a["rope_theta"]) ** (-np.arange(0, rd, 2, dtype=np.float64) / rd)
    rope = None
    if inv is not None:
        rope = dict(inv_freq=np.asarray(inv, dtype=np.float64), rotary_dim=rd, style=a.get("rope_style"),
                    attention_scaling=float(la.get("rope_attention_scaling", a.get("rope_attention_scaling", 1.0))))
    return dict(scale=float(a.get("attn_scale", hd ** -0.5)), softcap=a.get("attn_logit_softcap"),
                window=la.get("sliding_window"), rope=rope)
