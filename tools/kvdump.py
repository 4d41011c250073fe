"""Write and read kvdump v1 files (see docs / DESIGN.md section 2).

Dependencies: numpy and h5py only (no PyTorch), so the writer can be tested in
CI and used by any recorder.

    from kvdump import write_kvdump, read_kvdump
    write_kvdump("x.kvdump.h5", keys, values, queries, prompt_len=384,
                 tokens=ids, model="tiny-lm", rope_theta=10000.0, rope_style="neox")

keys / values: one array per layer, shape [num_kv_heads, seq_len, head_dim]
(keys as cached, i.e. after RoPE); queries: one array per layer, shape
[num_heads, seq_len, head_dim] (after RoPE, the query of every position).

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


def write_kvdump(path, keys, values, queries=None, *, prompt_len, tokens=None, model="", text="",
                 rope_theta=None, rope_style=None, dtype="float16"):
    """Validate and write one kvdump v1 file. Returns the shape dict
    {num_layers, num_heads, num_kv_heads, head_dim, seq_len}.

    num_heads is taken from the queries; without queries it is written as
    num_kv_heads (no GQA information is available then).
    """
    K, V, Q, tok, shape = _validate(keys, values, queries, prompt_len, tokens, dtype,
                                    rope_theta, rope_style)
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
    return {"attrs": attrs, "keys": keys, "values": values, "queries": queries, "tokens": tokens}
