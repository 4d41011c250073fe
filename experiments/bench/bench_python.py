#!/usr/bin/env python3
"""The Python module's costs, each as median / min / max over --repeats runs,
with a baseline measured in the same run:

1. Call overhead per State.append: a one-head FP16 state (the identity: the
   core only copies d floats), d = 128, against a Python call of a no-op
   function with the same two arguments (the interpreter's own floor), and
   KIVI-2bit's append (real work) for scale. Goal: < 2 µs per append.
2. compress() on one 7B-shaped layer (32 kv heads, K and V [4096 × 128], the
   whole sequence at prefill) against the same compression by the CLI:
   `kvlab run` on a one-layer synth dump of those tensors (the whole process,
   and timing.csv's batch_wall_s: read the layer + replay), `bench_kivi` (the
   C++ states on in-memory data, no I/O) when built, and the memory floor
   (NumPy copying K and V into preallocated arrays). The machine may be
   shared: CPU time (all threads of the process) is reported beside wall time.

The allocator is tuned as the kvlab executable tunes it (kvlab.tune_allocator)
unless --no-tune-allocator.

    PYTHONPATH=build/python /usr/bin/python3 experiments/bench/bench_python.py [--threads 2] [--repeats 7]
"""

import argparse
import csv
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kvlab

ROOT = Path(__file__).resolve().parents[2]


def stats(samples, unit, scale):
    xs = [s * scale for s in samples]
    return f"median {statistics.median(xs):8.2f} {unit}  (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def timed(fn):
    """(wall, CPU time of this process) of one call, in seconds."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench_append(repeats, tokens=20000, d=128):
    """Per-call times from wall clock and from this process's CPU time (the
    machine is shared: CPU time is what the calls themselves cost)."""
    rng = np.random.default_rng(0)
    rows_k = list(rng.standard_normal((tokens, d)).astype(np.float32))  # pre-sliced: no indexing in the loop
    rows_v = list(rng.standard_normal((tokens, d)).astype(np.float32))
    prompt_k = rng.standard_normal((16, d)).astype(np.float32)

    def noop(a, b):
        return None

    def per_token(loop):
        wall, cpu = timed(loop)
        return wall / tokens, cpu / tokens

    def floor_loop():
        f = noop
        for k, v in zip(rows_k, rows_v):
            f(k, v)

    def appends(spec):
        st = kvlab.Compressor(spec).new_state(head_dim=d, prompt_len=16, max_tokens=16 + tokens)
        st.prefill(prompt_k, prompt_k)
        append = st.append

        def loop():
            for k, v in zip(rows_k, rows_v):
                append(k, v)
        return per_token(loop)

    runs = {"floor": [], "fp16": [], "kivi-2bit": []}
    for _ in range(repeats):  # interleaved: background load hits all three alike
        runs["floor"].append(per_token(floor_loop))
        runs["fp16"].append(appends("fp16"))
        runs["kivi-2bit"].append(appends("kivi-2bit"))
    print(f"State.append, d={d}, {tokens} tokens per run; wall clock | CPU time of this process:")
    labels = {"floor": "Python no-op call, same arguments", "fp16": "fp16 append (the core copies d floats)",
              "kivi-2bit": "kivi-2bit append"}
    for name, label in labels.items():
        wall, cpu = zip(*runs[name])
        print(f"  {label:40} {stats(wall, 'µs', 1e6)} | {stats(cpu, 'µs', 1e6)}")
    for i, what in ((0, "wall"), (1, "CPU")):
        over = [a[i] - b[i] for a, b in zip(runs["fp16"], runs["floor"])]
        print(f"  => binding overhead per append ({what:4}) {stats(over, 'µs', 1e6)}  (goal < 2 µs)")


def bench_compress(repeats, threads, kvlab_bin, bench_kivi):
    heads, tokens, d = 32, 4096, 128
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "layer7b.kvdump.h5"
        subprocess.run([kvlab_bin, "-q", "synth", str(dump), "--preset", "llama2-7b", "--layers", "1", "--tokens",
                        str(tokens), "--prompt", str(tokens), "--no-queries", "--float32"], check=True,
                       stdout=subprocess.DEVNULL)
        import h5py
        with h5py.File(dump, "r") as f:
            keys = np.ascontiguousarray(f["layers/0/keys"][...], dtype=np.float32)
            values = np.ascontiguousarray(f["layers/0/values"][...], dtype=np.float32)
        assert keys.shape == (heads, tokens, d)
        k_dst, v_dst = np.empty_like(keys), np.empty_like(values)

        def floor():
            np.copyto(k_dst, keys)
            np.copyto(v_dst, values)

        def cli():
            out = Path(tmp) / "r"
            c0 = children_cpu()
            w0 = time.perf_counter()
            subprocess.run([kvlab_bin, "-q", "run", "-d", str(dump), "-c", "kivi-2bit", "--no-attention",
                            "--eval-every", "0", "-j", str(threads), "--csv", str(out), "--overwrite"], check=True,
                           stdout=subprocess.DEVNULL)
            wall, cpu = time.perf_counter() - w0, children_cpu() - c0
            with open(out / "timing.csv") as f:
                batch = float(next(csv.DictReader(f))["batch_wall_s"])
            return wall, cpu, batch

        runs = {"floor": [], "compress": [], "cli": [], "batch": []}
        ratio = None
        for _ in range(repeats):  # interleaved: background load hits all alike
            runs["floor"].append(timed(floor))
            runs["compress"].append(timed(lambda: kvlab.compress("kivi-2bit", keys, values, threads=threads)))
            wall, cpu, batch = cli()
            runs["cli"].append((wall, cpu))
            runs["batch"].append((batch, float("nan")))
        ratio = kvlab.compress("kivi-2bit", keys, values, threads=threads).compression_ratio
    print(f"\nkivi-2bit on one 7B-shaped layer ({heads} kv heads × [{tokens} × {d}], K and V), {threads} threads, "
          f"ratio {ratio:.3f}; wall clock | CPU time (all threads):")
    labels = {"floor": "memory floor (NumPy copy of K, V)", "compress": "kvlab.compress()",
              "cli": "kvlab run (whole process)", "batch": "kvlab run: read + replay (timing.csv)"}
    for name, label in labels.items():
        wall, cpu = zip(*runs[name])
        cpu_text = "" if name == "batch" else " | " + stats(cpu, "ms", 1e3)
        print(f"  {label:38} {stats(wall, 'ms', 1e3)}{cpu_text}")
    if bench_kivi and Path(bench_kivi).is_file():
        kivi = []
        for _ in range(repeats):
            out = subprocess.run([bench_kivi, str(threads)], capture_output=True, text=True, check=True).stdout
            kivi.append(float(re.search(r"compress\+reconstruct:\s+([\d.]+) ms", out).group(1)) / 1e3)
        print(f"  {'bench_kivi (C++ states, no I/O; best of 7)':38} {stats(kivi, 'ms', 1e3)}")
    med = {n: [statistics.median(x) for x in zip(*runs[n])] for n in ("compress", "cli")}
    print(f"  => compress() / kvlab run: wall {med['compress'][0] / med['cli'][0]:.2f}x, "
          f"CPU {med['compress'][1] / med['cli'][1]:.2f}x (medians)")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--kvlab", default=str(ROOT / "build" / "kvlab"))
    ap.add_argument("--bench-kivi", default=str(ROOT / "build" / "bench_kivi"))
    ap.add_argument("--only", choices=["append", "compress"])
    ap.add_argument("--no-tune-allocator", action="store_true",
                    help="leave glibc's malloc defaults (the kvlab executable tunes them at start-up)")
    a = ap.parse_args()
    if a.repeats < 5:
        sys.exit("--repeats must be at least 5")
    if not a.no_tune_allocator:
        kvlab.tune_allocator()
    print(f"kvlab {kvlab.__version__} ({kvlab.git_revision}), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, allocator {'default' if a.no_tune_allocator else 'tuned (as the CLI)'}")
    if a.only in (None, "append"):
        bench_append(a.repeats)
    if a.only in (None, "compress"):
        bench_compress(a.repeats, a.threads, a.kvlab, a.bench_kivi)


if __name__ == "__main__":
    main()
