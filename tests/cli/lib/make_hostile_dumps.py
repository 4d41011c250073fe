"""Writes hostile and corrupt variants of a good kvdump (for tests/cli/hostile_dumps.sh).

Usage: make_hostile_dumps.py GOOD.h5 OUT_DIR
Every file is small (a copy of GOOD or a few KB of HDF5 headers); none is committed.
"""
import shutil
import struct
import sys

import h5py
import numpy as np

good, out = sys.argv[1], sys.argv[2]


def copy(name):
    path = f"{out}/{name}.h5"
    shutil.copy(good, path)
    return path


def heap_id_offset(data, value):
    """Offset of the 16-byte global heap ID (length, collection address, index) of the string `value`."""
    start = data.find(b"GCOL")
    while start >= 0:
        size = struct.unpack_from("<Q", data, start + 8)[0]
        p = start + 16
        while p + 16 <= start + size:
            index, _, _, length = struct.unpack_from("<HHIQ", data, p)
            if index == 0:
                break
            if data[p + 16:p + 16 + length] == value:
                return data.index(struct.pack("<IQI", length, start, index))
            p += 16 + (length + 7) // 8 * 8
        start = data.find(b"GCOL", start + 1)
    raise SystemExit(f"no heap object {value!r} in {good}")


def flip(name, delta_offset, value):
    """A copy whose `format` heap ID has byte `delta_offset` set to `value`."""
    data = bytearray(open(good, "rb").read())
    data[heap_id_offset(bytes(data), b"kvdump") + delta_offset] = value
    open(f"{out}/{name}.h5", "wb").write(data)


flip("vlen-length", 0, 0x01)   # stored length 1 < 6 bytes in the heap: HDF5 1.10.8 overflows a heap buffer
flip("vlen-index", 13, 0x40)   # object index 16385: SIGSEGV in H5HG_read before kvlab checked it

with h5py.File(f"{out}/other.h5", "w") as f:
    f["x"] = np.zeros((2, 256, 32), np.float16)

with h5py.File(copy("external-link"), "r+") as f:
    del f["layers/1/values"]
    f["layers/1/values"] = h5py.ExternalLink(f"{out}/other.h5", "/x")
with h5py.File(copy("soft-link"), "r+") as f:
    del f["layers/1/values"]
    f["layers/1/values"] = h5py.SoftLink("/layers/1/keys")
with h5py.File(copy("group-for-dataset"), "r+") as f:
    del f["layers/0/queries"]
    f.create_group("layers/0/queries")
with h5py.File(copy("virtual"), "r+") as f:
    del f["layers/1/values"]
    layout = h5py.VirtualLayout(shape=(2, 256, 32), dtype=np.float16)
    layout[...] = h5py.VirtualSource(f"{out}/other.h5", "x", shape=(2, 256, 32))
    f.create_virtual_dataset("layers/1/values", layout)
with h5py.File(copy("external-storage"), "r+") as f:
    del f["layers/1/keys"]
    f.create_dataset("layers/1/keys", shape=(2, 256, 32), dtype=np.float16,
                     external=[("/etc/passwd", 0, h5py.h5f.UNLIMITED)])
with h5py.File(copy("negative-token"), "r+") as f:
    t = f["tokens"][...]
    t[17] = -5
    f["tokens"][...] = t
with h5py.File(copy("huge-token"), "r+") as f:
    t = f["tokens"][...]
    t[3] = 2**40
    f["tokens"][...] = t

# ~10 KB files whose attributes and datasets declare huge shapes, no chunk written.
for name, kv, T, d in [("huge-kv-heads", 1 << 20, 256, 32), ("huge-seq-len", 2, 1 << 28, 32),
                       ("huge-head-dim", 2, 256, 1 << 26)]:
    with h5py.File(f"{out}/{name}.h5", "w") as f:
        f.attrs.update(format="kvdump", version=1, num_layers=2, num_heads=kv * 2, num_kv_heads=kv,
                       head_dim=d, prompt_len=128)
        for layer in range(2):
            for tensor in ("keys", "values"):
                f.create_dataset(f"layers/{layer}/{tensor}", shape=(kv, T, d), dtype=np.float16,
                                 chunks=(1, min(T, 256), min(d, 64)))
