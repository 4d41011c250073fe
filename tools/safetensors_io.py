"""Pure-Python (numpy only) reader and writer of the safetensors format.

The format: an 8-byte little-endian unsigned header length N, then N bytes of
JSON {name: {"dtype": "F32"|"F16"|"BF16"|..., "shape": [...],
"data_offsets": [begin, end]}, optional "__metadata__": {str: str}}, then the
raw little-endian tensor bytes (offsets relative to the end of the header).
"""

from __future__ import annotations

import json
import struct

import numpy as np

# BF16 is read as uint16 bits and widened to float32.
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_NAMES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
          np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
          np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL"}


class SafetensorsError(Exception):
    pass


class SafetensorsFile:
    """Lazy reader: the header is parsed and checked; tensors are memory-mapped on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise SafetensorsError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            f.seek(0, 2)
            size = f.tell()
            if n > size - 8:
                raise SafetensorsError(f"{path}: header length {n} exceeds the file ({size} bytes)")
            f.seek(8)
            try:
                self.header = json.loads(f.read(n))
            except ValueError as e:
                raise SafetensorsError(f"{path}: header is not JSON ({e})") from None
        self.metadata = self.header.pop("__metadata__", None) or {}
        self.offset = 8 + n
        for name, h in self.header.items():
            b, e = h.get("data_offsets", (None, None))
            if h.get("dtype") not in DTYPES or b is None or not (0 <= b <= e <= size - self.offset):
                raise SafetensorsError(f"{path}: tensor {name}: bad header entry {h}")
            count = int(np.prod(h["shape"], dtype=np.int64))
            if count * np.dtype(DTYPES[h["dtype"]]).itemsize != e - b:
                raise SafetensorsError(f"{path}: tensor {name}: {e - b} bytes for shape {h['shape']} {h['dtype']}")
        self.mm = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else None

    def keys(self):
        return self.header.keys()

    def get(self, name):
        h = self.header[name]
        b, e = h["data_offsets"]
        raw = self.mm[self.offset + b: self.offset + e]
        a = raw.view(DTYPES[h["dtype"]]).reshape(h["shape"])
        if h["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a


def save_file(tensors, path, metadata=None):
    """Writes {name: numpy array} (float64/32/16, integer or bool) as safetensors."""
    header, blobs, pos = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in _NAMES:
            raise SafetensorsError(f"tensor {name}: dtype {a.dtype} is not supported")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [pos, pos + len(data)]}
        blobs.append(data)
        pos += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
