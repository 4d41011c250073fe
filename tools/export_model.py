#!/usr/bin/env python3
"""Convert a local Hugging Face Llama / Mistral / Qwen2-family checkpoint into the
kvlab-model v1 HDF5 format (docs/model-format.md).

    /usr/bin/python3 tools/export_model.py CHECKPOINT_DIR OUT.h5 [--dtype float16|float32] [--model NAME]

Needs numpy + h5py only: *.safetensors files (single or sharded) are read
directly (F32, F16, BF16); a pytorch_model.bin checkpoint needs torch.
Unsupported configurations (other architectures, rope scaling, non-SiLU MLPs,
o_proj/MLP biases, q/k norms) are refused with a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np

FORMAT = "kvlab-model"
VERSION = 1
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")


class ExportError(Exception):
    pass


# --------------------------------------------------------------------------- safetensors (numpy only)

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
              "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class SafetensorsFile:
    """Lazy reader: the header is parsed, tensors are memory-mapped on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            self.header = json.loads(f.read(n))
        self.offset = 8 + n
        self.header.pop("__metadata__", None)
        self.mm = np.memmap(path, dtype=np.uint8, mode="r")

    def keys(self):
        return self.header.keys()

    def get(self, name):
        h = self.header[name]
        if h["dtype"] not in _ST_DTYPES:
            raise ExportError(f"{self.path}: tensor {name}: unsupported dtype {h['dtype']}")
        b, e = h["data_offsets"]
        raw = self.mm[self.offset + b: self.offset + e]
        a = raw.view(_ST_DTYPES[h["dtype"]]).reshape(h["shape"])
        if h["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a


class Checkpoint:
    """name -> numpy array over all weight files of a checkpoint folder."""

    def __init__(self, folder):
        self.where = {}
        files = sorted(fn for fn in os.listdir(folder) if fn.endswith(".safetensors"))
        if files:
            for fn in files:
                st = SafetensorsFile(os.path.join(folder, fn))
                for k in st.keys():
                    self.where[k] = st
            self._get = lambda k: self.where[k].get(k)
        elif os.path.exists(os.path.join(folder, "pytorch_model.bin")):
            try:
                import torch
            except ImportError:
                raise ExportError("pytorch_model.bin checkpoints need torch; convert to safetensors") from None
            sd = torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)
            self.where = {k: None for k in sd}
            self._get = lambda k: sd[k].float().numpy()
        else:
            raise ExportError(f"{folder}: no *.safetensors or pytorch_model.bin")

    def __contains__(self, k):
        return k in self.where

    def get(self, k):
        if k not in self.where:
            raise ExportError(f"checkpoint has no tensor {k}")
        return self._get(k)


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


def model_config(cfg):
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
    hd = int(cfg.get("head_dim") or hidden // H)
    return dict(
        architecture="llama",
        num_layers=int(cfg["num_hidden_layers"]),
        hidden_size=hidden,
        num_heads=H,
        num_kv_heads=int(cfg.get("num_key_value_heads") or H),
        head_dim=hd,
        intermediate_size=int(cfg["intermediate_size"]),
        vocab_size=int(cfg["vocab_size"]),
        rope_theta=rope_theta_of(cfg),
        rope_style="neox",
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=int(bool(cfg.get("tie_word_embeddings", False))),
    )


# --------------------------------------------------------------------------- writer

def _expect(name, a, shape):
    if tuple(a.shape) != tuple(shape):
        raise ExportError(f"{name}: expected shape {tuple(shape)}, found {tuple(a.shape)}")


def write_model(path, get, has, mc, *, dtype="float16", model_name=""):
    """Write kvlab-model v1. get(name) -> array, has(name) -> bool, over HF tensor names."""
    import h5py

    store = {"float16": np.float16, "float32": np.float32}[dtype]
    hid, H, Hkv, hd = mc["hidden_size"], mc["num_heads"], mc["num_kv_heads"], mc["head_dim"]
    ffn, V, L = mc["intermediate_size"], mc["vocab_size"], mc["num_layers"]

    def put(f, dst, src, shape):
        a = np.asarray(get(src), dtype=np.float32)
        _expect(src, a, shape)
        if not np.all(np.isfinite(a)):
            raise ExportError(f"{src}: non-finite values")
        s = a.astype(store)
        if not np.all(np.isfinite(s)):
            raise ExportError(f"{src}: values overflow {dtype}; use --dtype float32")
        f.create_dataset(dst, data=s)

    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = np.int64(VERSION)
            for k, v in mc.items():
                if isinstance(v, str):
                    f.attrs[k] = v
                elif isinstance(v, float):
                    f.attrs[k] = np.float64(v)
                else:
                    f.attrs[k] = np.int64(v)
            f.attrs["model"] = str(model_name)
            put(f, "embed_tokens", "model.embed_tokens.weight", (V, hid))
            for i in range(L):
                p = f"model.layers.{i}."
                g = f"layers/{i}/"
                put(f, g + "input_layernorm", p + "input_layernorm.weight", (hid,))
                put(f, g + "q_proj", p + "self_attn.q_proj.weight", (H * hd, hid))
                put(f, g + "k_proj", p + "self_attn.k_proj.weight", (Hkv * hd, hid))
                put(f, g + "v_proj", p + "self_attn.v_proj.weight", (Hkv * hd, hid))
                put(f, g + "o_proj", p + "self_attn.o_proj.weight", (hid, H * hd))
                for proj, n in (("q_proj", H * hd), ("k_proj", Hkv * hd), ("v_proj", Hkv * hd)):
                    if has(p + f"self_attn.{proj}.bias"):
                        put(f, g + proj + "_bias", p + f"self_attn.{proj}.bias", (n,))
                for bad in ("self_attn.o_proj.bias", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                            "mlp.gate_proj.bias"):
                    if has(p + bad):
                        raise ExportError(f"{p + bad}: not representable in kvlab-model v1")
                put(f, g + "post_attention_layernorm", p + "post_attention_layernorm.weight", (hid,))
                put(f, g + "gate_proj", p + "mlp.gate_proj.weight", (ffn, hid))
                put(f, g + "up_proj", p + "mlp.up_proj.weight", (ffn, hid))
                put(f, g + "down_proj", p + "mlp.down_proj.weight", (hid, ffn))
            put(f, "norm", "model.norm.weight", (hid,))
            if not mc["tie_word_embeddings"]:
                if not has("lm_head.weight"):
                    raise ExportError("tie_word_embeddings is false but the checkpoint has no lm_head.weight")
                put(f, "lm_head", "lm_head.weight", (V, hid))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_checkpoint(folder, out, *, dtype="float16", model_name=None):
    with open(os.path.join(folder, "config.json")) as fh:
        cfg = json.load(fh)
    mc = model_config(cfg)
    ck = Checkpoint(folder)
    name = model_name if model_name is not None else (cfg.get("_name_or_path") or os.path.basename(
        os.path.normpath(folder)))
    write_model(out, ck.get, ck.__contains__, mc, dtype=dtype, model_name=name)
    return mc


def read_model(path):
    """Read a kvlab-model file into (attrs, {dataset path: float32 array}) (small models only)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v))
                 for k, v in f.attrs.items()}
        if attrs.get("format") != FORMAT or attrs.get("version") != VERSION:
            raise ExportError(f"{path}: not a kvlab-model v1 file")
        f.visititems(lambda n, o: out.__setitem__(n, o[()].astype(np.float32)) if isinstance(o, h5py.Dataset)
                     else None)
    return attrs, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="local Hugging Face checkpoint folder (config.json + weights)")
    p.add_argument("out", help="output .h5 file")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--model", default=None, help="value of the 'model' attribute")
    a = p.parse_args(argv)
    try:
        mc = export_checkpoint(a.checkpoint, a.out, dtype=a.dtype, model_name=a.model)
    except (ExportError, OSError, KeyError, ValueError) as e:
        print(f"export_model: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"{a.out}: " + " ".join(f"{k}={v}" for k, v in mc.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
