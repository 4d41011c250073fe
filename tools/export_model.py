#!/usr/bin/env python3
"""Convert a Llama-architecture checkpoint into the kvlab-model v1 HDF5 format
(docs/model-format.md).

    /usr/bin/python3 tools/export_model.py SOURCE OUT.h5 [--map NAME_MAP.yaml] [--config KEY=VALUE ...]
        [--dtype float16|float32] [--model NAME] [--vocab bytes|FILE]

SOURCE is either
  * a Hugging Face checkpoint folder (config.json + *.safetensors or
    pytorch_model.bin): llama, mistral or qwen2, tensor names as in
    transformers; the config comes from config.json, the vocabulary from
    tokenizer.json when present; or
  * a plain state dict in one file, any tensor names: HDF5 (.h5/.hdf5: every
    dataset, named by its path without the leading '/'), safetensors
    (.safetensors) or PyTorch (.pt/.pth/.bin, needs torch). Its names are
    mapped to kvlab-model names by --map, and the config comes from the map
    and the command line.

NAME_MAP.yaml (every key optional):
    rename:                  # first full match wins; targets are kvlab-model dataset names
      - ['tok_emb\\.weight', 'embed_tokens']
      - {from: 'blocks\\.(\\d+)\\.attn\\.wq', to: 'layers/\\1/q_proj'}
      - {from: 'blocks\\.(\\d+)\\.ffn\\.w1', to: 'layers/\\1/gate_proj', transpose: true}   # stored [in, out]
    ignore: ['rope\\.freqs', '.*\\.attn\\.mask']   # tensors to skip; any other unmapped tensor is an error
    config: {num_heads: 8, rope_theta: 10000, rms_norm_eps: 1e-5}
    vocab: bytes             # or a file (see --vocab), relative to the map

Config keys are the kvlab-model root attributes. Shapes give num_layers,
hidden_size, vocab_size, intermediate_size, tie_word_embeddings, and head_dim
and num_kv_heads once num_heads (or head_dim) is known; num_heads, rope_theta
and rms_norm_eps must be stated (no silent defaults); rope_style defaults to
neox. --config overrides the map, which overrides config.json; stated values
are checked against the shapes.

--vocab: "bytes" (byte-level model), a JSON list of token strings (UTF-8), or
a Hugging Face tokenizer.json (byte-level BPE and SentencePiece-style vocabularies
are decoded to the bytes each token stands for).

Needs numpy + h5py (+ PyYAML for --map); safetensors are read by the
pure-Python reader in safetensors_io.py. Unsupported configurations (other
architectures, rope scaling, non-SiLU MLPs, o_proj/MLP biases, q/k norms) are
refused with a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import SafetensorsError, SafetensorsFile  # noqa: E402

FORMAT = "kvlab-model"
VERSION = 1
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
CONFIG_KEYS = {"num_layers": int, "hidden_size": int, "num_heads": int, "num_kv_heads": int, "head_dim": int,
               "intermediate_size": int, "vocab_size": int, "rope_theta": float, "rope_style": str,
               "rms_norm_eps": float, "tie_word_embeddings": int}


class ExportError(Exception):
    pass


# --------------------------------------------------------------------------- sources: name -> array

class TensorSource:
    """name -> numpy array over one checkpoint (lazy where the format allows)."""

    def __init__(self, names, get, shape, where):
        self.names, self._get, self._shape, self.where = list(names), get, shape, where

    def get(self, name):
        return np.asarray(self._get(name))

    def shape(self, name):
        return tuple(int(d) for d in self._shape(name))


def _torch_state_dict(path):
    try:
        import torch
    except ImportError:
        raise ExportError(f"{path}: reading PyTorch files needs torch (not importable here); "
                          "save the state dict as safetensors or HDF5 instead") from None
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # Unwrap {"state_dict": {...}} / {"model": {...}} containers.
    while isinstance(sd, dict) and not any(hasattr(v, "shape") for v in sd.values()):
        inner = [v for k, v in sd.items() if k in ("state_dict", "model", "module") and isinstance(v, dict)]
        if len(inner) != 1:
            raise ExportError(f"{path}: no tensors at the top level and no single state_dict/model entry")
        sd = inner[0]
    if not isinstance(sd, dict):
        raise ExportError(f"{path}: expected a state dict (name -> tensor), found {type(sd).__name__}")
    tensors = {k: v for k, v in sd.items() if hasattr(v, "shape")}
    return TensorSource(tensors, lambda k: tensors[k].detach().float().cpu().numpy(), lambda k: tensors[k].shape, path)


def _hdf5_source(path):
    import h5py

    f = h5py.File(path, "r")
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return TensorSource(names, lambda k: f[k][()], lambda k: f[k].shape, path)


def _safetensors_source(paths):
    where = {}
    for p in paths:
        st = SafetensorsFile(p)
        for k in st.keys():
            where[k] = st
    return TensorSource(sorted(where), lambda k: where[k].get(k), lambda k: where[k].header[k]["shape"], ", ".join(paths))


def open_source(path):
    """A checkpoint folder's weights or one state-dict file."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, fn) for fn in os.listdir(path) if fn.endswith(".safetensors"))
        if files:
            return _safetensors_source(files)
        for fn in ("pytorch_model.bin", "model.pt", "consolidated.00.pth"):
            if os.path.exists(os.path.join(path, fn)):
                return _torch_state_dict(os.path.join(path, fn))
        raise ExportError(f"{path}: no *.safetensors, pytorch_model.bin or model.pt in the folder")
    if not os.path.exists(path):
        raise ExportError(f"{path}: no such file or folder")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".h5", ".hdf5"):
        return _hdf5_source(path)
    if ext == ".safetensors":
        return _safetensors_source([path])
    if ext in (".pt", ".pth", ".bin", ".ckpt"):
        return _torch_state_dict(path)
    raise ExportError(f"{path}: unknown file type {ext!r} (expected .h5/.hdf5, .safetensors or .pt/.pth/.bin)")


# --------------------------------------------------------------------------- name maps

HF_MAP = {"rename": [
    (r"model\.embed_tokens\.weight", "embed_tokens"),
    (r"model\.norm\.weight", "norm"),
    (r"lm_head\.weight", "lm_head"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"layers/\1/input_layernorm"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"layers/\1/post_attention_layernorm"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.weight", r"layers/\1/\2_proj"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.bias", r"layers/\1/\2_proj_bias"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", r"layers/\1/\2_proj"),
], "ignore": [r".*\.rotary_emb\.inv_freq"]}


class NameMap:
    def __init__(self, spec, where):
        self.where = where
        self.rules = []
        for i, r in enumerate(spec.get("rename") or []):
            if isinstance(r, (list, tuple)) and len(r) == 2:
                src, dst, tr = r[0], r[1], False
            elif isinstance(r, dict) and {"from", "to"} <= set(r) and set(r) <= {"from", "to", "transpose"}:
                src, dst, tr = r["from"], r["to"], bool(r.get("transpose", False))
            else:
                raise ExportError(f"{where}: rename[{i}]: expected [FROM, TO] or {{from, to, transpose}}, found {r!r}")
            self.rules.append((self._compile(src, f"rename[{i}]"), str(dst), tr))
        self.ignore = [self._compile(p, f"ignore[{i}]") for i, p in enumerate(spec.get("ignore") or [])]

    def _compile(self, pattern, what):
        try:
            return re.compile(str(pattern))
        except re.error as e:
            raise ExportError(f"{self.where}: {what}: bad regular expression {pattern!r} ({e})") from None

    def apply(self, names):
        """{kvlab name: (source name, transpose)}; every source name is mapped or ignored."""
        out, unmapped = {}, []
        for n in names:
            for rx, dst, tr in self.rules:
                m = rx.fullmatch(n)
                if m:
                    target = m.expand(dst)
                    if target in out:
                        raise ExportError(f"{self.where}: {out[target][0]} and {n} both map to {target}")
                    out[target] = (n, tr)
                    break
            else:
                if not any(rx.fullmatch(n) for rx in self.ignore):
                    unmapped.append(n)
        if unmapped:
            more = f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else ""
            raise ExportError(f"{self.where}: no rename rule or ignore pattern matches {', '.join(unmapped[:5])}{more}")
        return out


def load_map(path):
    import yaml

    try:
        with open(path) as fh:
            spec = yaml.safe_load(fh) or {}
    except OSError as e:
        raise ExportError(f"{path}: cannot be read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ExportError(f"{path}: invalid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(spec, dict):
        raise ExportError(f"{path}: a name map is a YAML map (rename, ignore, config, vocab)")
    unknown = set(spec) - {"rename", "ignore", "config", "vocab"}
    if unknown:
        raise ExportError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: rename, ignore, config, vocab")
    return spec


# --------------------------------------------------------------------------- config

def rope_theta_of(cfg):
    theta = cfg.get("rope_theta")
    rp = cfg.get("rope_parameters") or {}
    if theta is None:
        theta = rp.get("rope_theta")
    if theta is None:
        theta = 10000.0
    for scaling in (cfg.get("rope_scaling"), rp):
        if isinstance(scaling, dict):
            t = scaling.get("rope_type", scaling.get("type", "default"))
            if t not in (None, "default"):
                raise ExportError(f"rope scaling {t!r} is not supported by kvlab-model v1 (plain RoPE only)")
    return float(theta)


def hf_config(cfg):
    """kvlab config keys from a transformers config.json."""
    mt = cfg.get("model_type")
    if mt not in SUPPORTED_TYPES:
        raise ExportError(f"model_type {mt!r} is not supported (supported: {', '.join(SUPPORTED_TYPES)})")
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ExportError(f"hidden_act {act!r} is not supported (SwiGLU with silu only)")
    if cfg.get("mlp_bias"):
        raise ExportError("mlp_bias=true is not supported")
    H = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    return dict(num_layers=int(cfg["num_hidden_layers"]), hidden_size=hidden, num_heads=H,
                num_kv_heads=int(cfg.get("num_key_value_heads") or H), head_dim=int(cfg.get("head_dim") or hidden // H),
                intermediate_size=int(cfg["intermediate_size"]), vocab_size=int(cfg["vocab_size"]),
                rope_theta=rope_theta_of(cfg), rope_style="neox", rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                tie_word_embeddings=int(bool(cfg.get("tie_word_embeddings", False))))


def parse_config_items(items, where):
    out = {}
    for it in items:
        for part in filter(None, (p.strip() for p in it.split(","))):
            if "=" not in part:
                raise ExportError(f"{where}: expected KEY=VALUE, found {part!r}")
            k, v = (s.strip() for s in part.split("=", 1))
            out[k] = v
    return out


def typed_config(raw, where):
    out = {}
    for k, v in raw.items():
        if k not in CONFIG_KEYS:
            raise ExportError(f"{where}: unknown config key {k!r}; valid: {', '.join(CONFIG_KEYS)}")
        t = CONFIG_KEYS[k]
        try:
            if t is int:
                if isinstance(v, str) and v.lower() in ("true", "false"):
                    v = v.lower() == "true"
                f = float(v)
                if f != int(f):
                    raise ValueError
                out[k] = int(f)
            else:
                out[k] = t(v)
        except (TypeError, ValueError):
            raise ExportError(f"{where}: config {k}: expected {t.__name__}, found {v!r}") from None
    return out


def complete_config(given, shapes):
    """Fills what the tensor shapes determine and checks what was stated."""
    def shape(name):
        if name not in shapes:
            raise ExportError(f"the mapped checkpoint has no {name}")
        return shapes[name]

    V, hid = shape("embed_tokens")
    layers = sorted({int(m.group(1)) for n in shapes for m in [re.fullmatch(r"layers/(\d+)/.+", n)] if m})
    if not layers or layers != list(range(len(layers))):
        raise ExportError(f"mapped layers must be numbered 0..L-1, found {layers[:8]}")
    q_rows = shape("layers/0/q_proj")[0]
    k_rows = shape("layers/0/k_proj")[0]
    derived = dict(num_layers=len(layers), hidden_size=hid, vocab_size=V,
                   intermediate_size=shape("layers/0/gate_proj")[0])
    c = dict(given)
    # Tied: stated, or no lm_head. A tied checkpoint may still store a copy of it (unused).
    c.setdefault("tie_word_embeddings", int("lm_head" not in shapes))
    if not c["tie_word_embeddings"] and "lm_head" not in shapes:
        raise ExportError("tie_word_embeddings is 0 but the checkpoint has no lm_head")
    for k, v in derived.items():
        if k in c and int(c[k]) != v:
            raise ExportError(f"config {k} = {c[k]} disagrees with the tensors ({v})")
        c[k] = v
    if "num_heads" not in c and "head_dim" in c:
        c["num_heads"] = q_rows // c["head_dim"]
    missing = [k for k in ("num_heads", "rope_theta", "rms_norm_eps") if k not in c]
    if missing:
        raise ExportError(f"config needs {', '.join(missing)} (give them in the map's config: or with --config KEY=VALUE)")
    c.setdefault("head_dim", q_rows // c["num_heads"])
    c.setdefault("num_kv_heads", k_rows // c["head_dim"])
    c.setdefault("rope_style", "neox")
    if c["num_heads"] * c["head_dim"] != q_rows or c["num_kv_heads"] * c["head_dim"] != k_rows:
        raise ExportError(f"num_heads {c['num_heads']} x head_dim {c['head_dim']} / num_kv_heads {c['num_kv_heads']} "
                          f"do not fit q_proj ({q_rows} rows) and k_proj ({k_rows} rows)")
    if c["rope_style"] not in ("neox", "gptj"):
        raise ExportError(f"rope_style must be neox or gptj, found {c['rope_style']!r}")
    return {"architecture": "llama", **{k: c[k] for k in CONFIG_KEYS}}


# --------------------------------------------------------------------------- vocabulary

def _bytes_to_unicode():
    """GPT-2's byte <-> printable character table (byte-level BPE vocabularies)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def tokenizer_vocab(tok, vocab_size):
    """Byte strings of a tokenizer.json's tokens, by id."""
    model = tok.get("model") or {}
    vocab = dict(model.get("vocab") or {})
    if isinstance(model.get("vocab"), list):  # unigram: [[piece, score], ...]
        vocab = {p[0]: i for i, p in enumerate(model["vocab"])}
    for t in tok.get("added_tokens") or []:
        vocab[t["content"]] = t["id"]
    byte_level = "ByteLevel" in json.dumps(tok.get("decoder") or {}) or "ByteLevel" in json.dumps(
        tok.get("pre_tokenizer") or {})
    table = _bytes_to_unicode() if byte_level else None
    special = {t["content"] for t in tok.get("added_tokens") or [] if t.get("special")}
    out = [b""] * vocab_size
    for piece, i in vocab.items():
        if not 0 <= i < vocab_size:
            continue
        if piece in special:
            out[i] = piece.encode()
        elif table is not None and all(ch in table for ch in piece):
            out[i] = bytes(table[ch] for ch in piece)
        elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):  # SentencePiece byte fallback
            out[i] = bytes([int(piece[3:5], 16)])
        else:
            out[i] = piece.replace("\u2581", " ").encode()
    return out


def load_vocab(spec, vocab_size, base_dir=""):
    """None, "bytes", or a list of byte strings (len vocab_size)."""
    if spec is None or spec == "bytes":
        return spec
    path = spec if os.path.isabs(spec) else os.path.join(base_dir, spec)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise ExportError(f"vocab {path}: cannot be read as JSON ({e})") from None
    if isinstance(data, dict):
        return tokenizer_vocab(data, vocab_size)
    if isinstance(data, list) and all(isinstance(t, str) for t in data):
        if len(data) > vocab_size:
            raise ExportError(f"vocab {path}: {len(data)} tokens for vocab_size {vocab_size}")
        return [t.encode() for t in data] + [b""] * (vocab_size - len(data))
    raise ExportError(f"vocab {path}: expected a JSON list of token strings or a tokenizer.json")


# --------------------------------------------------------------------------- writer

def write_model(path, tensors, mc, *, dtype="float16", model_name="", vocab=None):
    """Writes kvlab-model v1. tensors: {kvlab name: callable -> array}."""
    import h5py

    store = {"float16": np.float16, "float32": np.float32}[dtype]
    hid, H, Hkv, hd = mc["hidden_size"], mc["num_heads"], mc["num_kv_heads"], mc["head_dim"]
    ffn, V, L = mc["intermediate_size"], mc["vocab_size"], mc["num_layers"]
    shapes = {"embed_tokens": (V, hid), "norm": (hid,), "lm_head": (V, hid)}
    for i in range(L):
        g = f"layers/{i}/"
        shapes.update({g + "input_layernorm": (hid,), g + "post_attention_layernorm": (hid,),
                       g + "q_proj": (H * hd, hid), g + "k_proj": (Hkv * hd, hid), g + "v_proj": (Hkv * hd, hid),
                       g + "o_proj": (hid, H * hd), g + "gate_proj": (ffn, hid), g + "up_proj": (ffn, hid),
                       g + "down_proj": (hid, ffn), g + "q_proj_bias": (H * hd,), g + "k_proj_bias": (Hkv * hd,),
                       g + "v_proj_bias": (Hkv * hd,)})
    unknown = sorted(set(tensors) - set(shapes))
    if unknown:
        raise ExportError(f"not a kvlab-model dataset: {', '.join(unknown[:5])} (see docs/model-format.md)")
    required = [n for n in shapes if not n.endswith("_bias") and not (n == "lm_head" and mc["tie_word_embeddings"])]
    missing = [n for n in required if n not in tensors]
    if missing:
        raise ExportError(f"the checkpoint has no {', '.join(missing[:5])}")

    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = np.int64(VERSION)
            for k, v in mc.items():
                f.attrs[k] = v if isinstance(v, str) else (np.float64(v) if isinstance(v, float) else np.int64(v))
            f.attrs["model"] = str(model_name)
            for name in sorted(tensors):
                if name == "lm_head" and mc["tie_word_embeddings"]:
                    continue
                a = np.asarray(tensors[name](), dtype=np.float32)
                if tuple(a.shape) != shapes[name]:
                    raise ExportError(f"{name}: expected shape {shapes[name]}, found {tuple(a.shape)}")
                if not np.all(np.isfinite(a)):
                    raise ExportError(f"{name}: non-finite values")
                s = a.astype(store)
                if not np.all(np.isfinite(s)):
                    raise ExportError(f"{name}: values overflow {dtype}; use --dtype float32")
                f.create_dataset(name, data=s)
            if vocab == "bytes":
                f.attrs["vocab_type"] = "bytes"
            elif vocab is not None:
                f.attrs["vocab_type"] = "table"
                f.create_dataset("vocab/offsets", data=np.concatenate([[0], np.cumsum([len(t) for t in vocab])]).astype(np.int64))
                f.create_dataset("vocab/bytes", data=np.frombuffer(b"".join(vocab), dtype=np.uint8))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export(source, out, *, name_map=None, config_items=(), dtype="float16", model_name=None, vocab=None):
    """Exports SOURCE (folder or file) to OUT; returns the model config."""
    spec, map_dir, hf = None, "", None
    if name_map:
        spec = load_map(name_map)
        map_dir = os.path.dirname(os.path.abspath(name_map))
    cfg_json = os.path.join(source, "config.json") if os.path.isdir(source) else None
    given = {}
    if cfg_json and os.path.exists(cfg_json):
        with open(cfg_json) as fh:
            hf = json.load(fh)
        given.update(hf_config(hf))
    elif os.path.isdir(source) and not name_map:
        raise ExportError(f"{source}: no config.json (a folder without one needs --map with a config)")
    if spec:
        given.update(typed_config(spec.get("config") or {}, name_map))
    given.update(typed_config(parse_config_items(config_items, "--config"), "--config"))

    src = open_source(source)
    if not spec and not os.path.isdir(source) and not any(n.startswith("model.layers.") for n in src.names):
        raise ExportError(f"{source}: tensor names are not Hugging Face's ({', '.join(src.names[:3])}, ...): give --map")
    mapped = NameMap(spec if spec and spec.get("rename") else HF_MAP, name_map or "built-in Hugging Face names").apply(
        src.names)
    if hf is not None:
        for n in src.names:
            for bad in ("self_attn.o_proj.bias", "self_attn.q_norm.weight", "self_attn.k_norm.weight", "mlp.gate_proj.bias"):
                if n.endswith(bad):
                    raise ExportError(f"{n}: not representable in kvlab-model v1")
    shapes = {}
    for n, (s, tr) in mapped.items():
        shp = src.shape(s)
        shapes[n] = tuple(reversed(shp)) if tr else shp
    mc = complete_config(given, shapes)
    tensors = {n: (lambda s=s, tr=tr: src.get(s).T if tr else src.get(s)) for n, (s, tr) in mapped.items()}

    if vocab is None and spec:
        vocab = spec.get("vocab")
        if vocab not in (None, "bytes"):
            vocab = os.path.join(map_dir, vocab)
    if vocab is None and os.path.isdir(source) and os.path.exists(os.path.join(source, "tokenizer.json")):
        vocab = os.path.join(source, "tokenizer.json")
    vocab_bytes = load_vocab(vocab, mc["vocab_size"])
    if model_name is None:
        model_name = (hf or {}).get("_name_or_path") or os.path.basename(os.path.normpath(source))
    write_model(out, tensors, mc, dtype=dtype, model_name=model_name, vocab=vocab_bytes)
    return mc


def export_checkpoint(folder, out, *, dtype="float16", model_name=None, vocab=None):
    """A Hugging Face folder (train_tiny_lm.py)."""
    return export(folder, out, dtype=dtype, model_name=model_name, vocab=vocab)


def read_model(path):
    """Read a kvlab-model file into (attrs, {dataset path: float32 array}) (small models only)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v))
                 for k, v in f.attrs.items()}
        if attrs.get("format") != FORMAT or attrs.get("version") != VERSION:
            raise ExportError(f"{path}: not a kvlab-model v1 file")
        f.visititems(lambda n, o: out.__setitem__(n, o[()].astype(np.float32))
                     if isinstance(o, h5py.Dataset) and not n.startswith("vocab/") else None)
    return attrs, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="Hugging Face checkpoint folder, or a state-dict file (.h5, .safetensors, .pt)")
    p.add_argument("out", help="output .h5 file")
    p.add_argument("--map", default=None, help="NAME_MAP.yaml: regex renames, ignored tensors, config, vocab")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="config values (repeatable or comma-separated), e.g. num_heads=8,rope_theta=10000")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--model", default=None, help="value of the 'model' attribute")
    p.add_argument("--vocab", default=None, help="bytes, a JSON list of token strings, or a tokenizer.json")
    a = p.parse_args(argv)
    try:
        mc = export(a.source, a.out, name_map=a.map, config_items=a.config, dtype=a.dtype, model_name=a.model,
                    vocab=a.vocab)
    except (ExportError, SafetensorsError, OSError, KeyError, ValueError) as e:
        print(f"export_model: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"{a.out}: " + " ".join(f"{k}={v}" for k, v in mc.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
