#!/usr/bin/env python3
"""Tests for tools/export_model.py on generic checkpoints.

A toy Llama-shaped state dict with its own (non-Hugging Face) tensor names,
some stored transposed, is written as HDF5, safetensors and (where torch is
importable) a PyTorch .pt file; each is exported with one regex name map
(config partly in the map, partly on the command line) and must give exactly
the expected kvlab-model datasets and attributes. Also: a Hugging Face folder
rebuilt from the bundled model exports back to the same weights; vocabularies
(bytes, token list, byte-level BPE and SentencePiece tokenizer.json); the
pure-Python safetensors reader/writer; clear one-line errors. With KVLAB_BIN
set, kvlab loads the exported model and decodes with it.

Run: /usr/bin/python3 tests/python/test_export_model.py
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

try:
    import h5py
    import yaml  # noqa: F401  (the name map is YAML)
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

import export_model  # noqa: E402
from safetensors_io import SafetensorsFile, save_file  # noqa: E402

L, D, H, KV, HD, F, V = 2, 32, 4, 2, 8, 48, 40

NAME_MAP = r"""
rename:
  - ['tok[./]emb', 'embed_tokens']
  - ['final[./]norm[./]g', 'norm']
  - ['out[./]w', 'lm_head']
  - ['blocks[./](\d+)[./]norm1[./]g', 'layers/\1/input_layernorm']
  - ['blocks[./](\d+)[./]norm2[./]g', 'layers/\1/post_attention_layernorm']
  - {from: 'blocks[./](\d+)[./]attn[./]w([qkvo])', to: 'layers/\1/\2_proj'}
  - {from: 'blocks[./](\d+)[./]attn[./]bk', to: 'layers/\1/k_proj_bias'}
  - {from: 'blocks[./](\d+)[./]ffn[./]w1', to: 'layers/\1/gate_proj', transpose: true}
  - {from: 'blocks[./](\d+)[./]ffn[./]w3', to: 'layers/\1/up_proj', transpose: true}
  - {from: 'blocks[./](\d+)[./]ffn[./]w2', to: 'layers/\1/down_proj', transpose: true}
ignore: ['rope[./]freqs']
config: {num_heads: 4, rope_theta: 50000}
"""


def toy_state_dict(seed=0):
    """Own names; FFN weights stored [in, out] (transposed w.r.t. nn.Linear)."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)  # noqa: E731
    sd = {"tok.emb": w(V, D), "final.norm.g": 1 + 0.1 * w(D), "out.w": w(V, D), "rope.freqs": w(HD // 2)}
    expected = {"embed_tokens": sd["tok.emb"], "norm": sd["final.norm.g"], "lm_head": sd["out.w"]}
    for i in range(L):
        p, g = f"blocks.{i}.", f"layers/{i}/"
        blk = {"norm1.g": 1 + 0.1 * w(D), "norm2.g": 1 + 0.1 * w(D), "attn.wq": w(H * HD, D), "attn.wk": w(KV * HD, D),
               "attn.wv": w(KV * HD, D), "attn.wo": w(D, H * HD), "attn.bk": 0.1 * w(KV * HD), "ffn.w1": w(D, F),
               "ffn.w3": w(D, F), "ffn.w2": w(F, D)}
        sd.update({p + k: v for k, v in blk.items()})
        expected.update({g + "input_layernorm": blk["norm1.g"], g + "post_attention_layernorm": blk["norm2.g"],
                         g + "q_proj": blk["attn.wq"], g + "k_proj": blk["attn.wk"], g + "v_proj": blk["attn.wv"],
                         g + "o_proj": blk["attn.wo"], g + "k_proj_bias": blk["attn.bk"],
                         g + "gate_proj": blk["ffn.w1"].T, g + "up_proj": blk["ffn.w3"].T, g + "down_proj": blk["ffn.w2"].T})
    return sd, expected


def write_h5_state_dict(path, sd):
    with h5py.File(path, "w") as f:  # nested groups: blocks/0/attn/wq
        for k, v in sd.items():
            f.create_dataset(k.replace(".", "/"), data=v)


def torch_or_reason():
    try:
        import torch
        return torch, None
    except Exception as e:  # ImportError or a broken install
        return None, f"{type(e).__name__}: {e}"


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.map = os.path.join(self.d, "map.yaml")
        with open(self.map, "w") as fh:
            fh.write(NAME_MAP)

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.d, name)

    def run_cli(self, *args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_model.py"), *args],
                              capture_output=True, text=True)

    def check_exported(self, out, expected, dtype=np.float16):
        attrs, w = export_model.read_model(out)
        self.assertEqual(attrs["num_layers"], L)
        self.assertEqual(attrs["hidden_size"], D)
        self.assertEqual(attrs["num_heads"], H)
        self.assertEqual(attrs["num_kv_heads"], KV)  # from k_proj's rows / head_dim
        self.assertEqual(attrs["head_dim"], HD)
        self.assertEqual(attrs["intermediate_size"], F)
        self.assertEqual(attrs["vocab_size"], V)
        self.assertEqual(attrs["rope_theta"], 50000.0)  # from the map
        self.assertEqual(attrs["rms_norm_eps"], 1e-5)  # from the command line
        self.assertEqual(attrs["tie_word_embeddings"], 0)
        self.assertEqual(sorted(w), sorted(expected))
        for k, v in expected.items():
            np.testing.assert_array_equal(w[k], v.astype(dtype).astype(np.float32), err_msg=k)

    def test_three_file_types_same_model(self):
        sd, expected = toy_state_dict()
        write_h5_state_dict(self.path("sd.h5"), sd)
        save_file(sd, self.path("sd.safetensors"))
        sources = ["sd.h5", "sd.safetensors"]
        torch, reason = torch_or_reason()
        if torch is not None:
            torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, self.path("sd.pt"))
            sources.append("sd.pt")
        else:
            print(f"SKIP .pt export: torch is not importable here ({reason})")
        outs = []
        for src in sources:
            out = self.path(src + ".model.h5")
            r = self.run_cli(self.path(src), out, "--map", self.map, "--config", "rms_norm_eps=1e-5")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.check_exported(out, expected)
            outs.append(out)
        ref = export_model.read_model(outs[0])
        for o in outs[1:]:
            a, w = export_model.read_model(o)
            self.assertEqual({k: v for k, v in a.items() if k != "model"},
                             {k: v for k, v in ref[0].items() if k != "model"})
            for k in w:
                np.testing.assert_array_equal(w[k], ref[1][k])
        # float32 keeps the weights exactly.
        out = self.path("f32.h5")
        r = self.run_cli(self.path("sd.safetensors"), out, "--map", self.map, "--config", "rms_norm_eps=1e-5",
                         "--dtype", "float32")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_exported(out, expected, np.float32)
        kvlab = os.environ.get("KVLAB_BIN")
        if kvlab:
            tokens = self.path("t.txt")
            with open(tokens, "w") as fh:
                fh.write(" ".join(str(t) for t in np.random.default_rng(1).integers(0, V, 40)))
            r = subprocess.run([kvlab, "decode", "-m", out, "--tokens", tokens, "-c", "fp16", "--prompt-len", "16"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ratio comp/ref 1.00000", r.stdout)
        else:
            print("SKIP kvlab load: KVLAB_BIN not set")

    def test_errors_are_one_line(self):
        sd, _ = toy_state_dict()
        sd["blocks.1.attn.extra"] = np.zeros(3, np.float32)
        save_file(sd, self.path("extra.safetensors"))
        cases = [
            ((self.path("extra.safetensors"), "x.h5", "--map", self.map, "--config", "rms_norm_eps=1e-5"),
             "no rename rule or ignore pattern matches blocks.1.attn.extra"),
            ((self.path("extra.safetensors"), "x.h5"), "tensor names are not Hugging Face's"),
            ((self.path("nope.safetensors"), "x.h5", "--map", self.map), "no such file or folder"),
        ]
        sd2, _ = toy_state_dict()
        save_file(sd2, self.path("ok.safetensors"))
        cases.append(((self.path("ok.safetensors"), "x.h5", "--map", self.map), "config needs rms_norm_eps"))
        cases.append(((self.path("ok.safetensors"), "x.h5", "--map", self.map, "--config", "rms_norm_eps=1e-5,num_heads=3"),
                      "do not fit q_proj"))
        cases.append(((self.path("ok.safetensors"), "x.h5", "--map", self.map, "--config", "rms_norm_eps=1e-5,hidden_size=64"),
                      "config hidden_size = 64 disagrees with the tensors (32)"))
        cases.append(((self.path("ok.safetensors"), "x.h5", "--map", self.map, "--config", "eps=1"),
                      "unknown config key 'eps'"))
        with open(self.path("badmap.yaml"), "w") as fh:
            fh.write("rename: [['blocks(', 'x']]\n")
        cases.append(((self.path("ok.safetensors"), "x.h5", "--map", self.path("badmap.yaml")),
                      "rename[0]: bad regular expression"))
        with open(self.path("bad.safetensors"), "wb") as fh:
            fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
        cases.append(((self.path("bad.safetensors"), "x.h5", "--map", self.map), "header is not JSON"))
        os.makedirs(self.path("emptydir"))
        cases.append(((self.path("emptydir"), "x.h5"), "no config.json"))
        torch, _ = torch_or_reason()
        if torch is None:
            with open(self.path("sd.pt"), "wb") as fh:
                fh.write(b"\0")
            cases.append(((self.path("sd.pt"), "x.h5", "--map", self.map), "reading PyTorch files needs torch"))
        for args, want in cases:
            r = self.run_cli(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(want, r.stderr, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertFalse(os.path.exists("x.h5"))

    def test_hugging_face_folder_round_trip(self):
        src = os.path.join(ROOT, "data", "tiny-lm", "model.h5")
        if not os.path.exists(src):
            print("SKIP HF round trip: data/tiny-lm/model.h5 absent")
            return
        attrs, w = export_model.read_model(src)
        hf = {"model.embed_tokens.weight": w["embed_tokens"], "model.norm.weight": w["norm"], "lm_head.weight": w["lm_head"]}
        for i in range(attrs["num_layers"]):
            p, g = f"model.layers.{i}.", f"layers/{i}/"
            for n in ("input_layernorm", "post_attention_layernorm"):
                hf[p + n + ".weight"] = w[g + n]
            for n in ("q", "k", "v", "o"):
                hf[p + f"self_attn.{n}_proj.weight"] = w[g + n + "_proj"]
            for n in ("gate", "up", "down"):
                hf[p + f"mlp.{n}_proj.weight"] = w[g + n + "_proj"]
        folder = self.path("hf")
        os.makedirs(folder)
        save_file({k: v.astype(np.float16) for k, v in hf.items()}, os.path.join(folder, "model.safetensors"))
        with open(os.path.join(folder, "config.json"), "w") as fh:
            json.dump(dict(model_type="llama", hidden_act="silu", num_attention_heads=attrs["num_heads"],
                           num_key_value_heads=attrs["num_kv_heads"], hidden_size=attrs["hidden_size"],
                           num_hidden_layers=attrs["num_layers"], intermediate_size=attrs["intermediate_size"],
                           vocab_size=attrs["vocab_size"], rope_theta=attrs["rope_theta"],
                           rms_norm_eps=attrs["rms_norm_eps"], tie_word_embeddings=False), fh)
        out = self.path("back.h5")
        r = self.run_cli(folder, out, "--vocab", "bytes")
        self.assertEqual(r.returncode, 0, r.stderr)
        a2, w2 = export_model.read_model(out)
        for k in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                  "vocab_size", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "rope_style", "vocab_type"):
            self.assertEqual(a2[k], attrs[k], k)
        self.assertEqual(sorted(w2), sorted(w))
        for k in w:
            np.testing.assert_array_equal(w2[k], w[k], err_msg=k)

    def test_vocabularies(self):
        # Byte-level BPE: 'Ġ' is the space byte, 'Ċ' the newline.
        bpe = {"model": {"type": "BPE", "vocab": {"a": 0, "Ġthe": 1, "Ċ": 2, "Ã©": 3}},
               "decoder": {"type": "ByteLevel"}, "added_tokens": [{"id": 4, "content": "<|eot|>", "special": True}]}
        got = export_model.tokenizer_vocab(bpe, 6)
        self.assertEqual(got[:5], [b"a", b" the", b"\n", "é".encode(), b"<|eot|>"])
        self.assertEqual(got[5], b"")
        # SentencePiece style: '▁' is a space, <0x0A> a byte.
        sp = {"model": {"type": "BPE", "vocab": {"<unk>": 0, "▁the": 1, "<0x0A>": 2, "é": 3}},
              "decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteFallback"}]}}
        self.assertEqual(export_model.tokenizer_vocab(sp, 4), [b"<unk>", b" the", b"\n", "é".encode()])
        # A token list written into the model as a table, read back byte for byte.
        sd, _ = toy_state_dict()
        save_file(sd, self.path("sd.safetensors"))
        tokens = [f"w{i} " for i in range(V - 1)] + ["\n"]
        with open(self.path("tokens.json"), "w") as fh:
            json.dump(tokens, fh)
        out = self.path("v.h5")
        r = self.run_cli(self.path("sd.safetensors"), out, "--map", self.map, "--config", "rms_norm_eps=1e-5",
                         "--vocab", self.path("tokens.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["vocab_type"], "table")
            off, data = f["vocab/offsets"][()], f["vocab/bytes"][()].tobytes()
        self.assertEqual([data[off[i]:off[i + 1]].decode() for i in range(V)], tokens)

    def test_safetensors_io(self):
        a = {"x": np.arange(6, dtype=np.float16).reshape(2, 3), "y": np.array([1, -2], np.int64),
             "z": np.ones((2, 2), np.float32)}
        save_file(a, self.path("t.safetensors"), metadata={"k": "v"})
        st = SafetensorsFile(self.path("t.safetensors"))
        self.assertEqual(sorted(st.keys()), ["x", "y", "z"])
        self.assertEqual(st.metadata, {"k": "v"})
        for k, v in a.items():
            np.testing.assert_array_equal(st.get(k), v)
            self.assertEqual(st.get(k).dtype, v.dtype)
        # BF16 is widened to float32 exactly.
        bits = (np.array([1.5, -2.25], np.float32).view(np.uint32) >> 16).astype(np.uint16)
        header = json.dumps({"b": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
        with open(self.path("b.safetensors"), "wb") as fh:
            fh.write(len(header).to_bytes(8, "little") + header + bits.tobytes())
        np.testing.assert_array_equal(SafetensorsFile(self.path("b.safetensors")).get("b"), [1.5, -2.25])


if __name__ == "__main__":
    unittest.main(verbosity=1)
