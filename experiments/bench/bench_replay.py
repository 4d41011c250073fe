#!/usr/bin/python3
"""End-to-end `kvlab run` timings on a 7B-shaped synthetic dump (issue: per-step
error at 7B scale). Every configuration runs --repeats times in a fresh process;
prints wall and CPU (user+sys) seconds as median [min, max], the peak RSS, and
the exact command. The floor, measured in the same run, is the same dump
replayed through fp16 with no metrics but the final ones (reading + decoding
fp16 + the replay loop).

  /usr/bin/python3 experiments/bench/bench_replay.py --kvlab build/kvlab \
      --dump /tmp/7b4.h5 --layers 4 --repeats 3

The dump is made with `kvlab synth --preset llama2-7b --layers N` when missing.
The machine is noisy (and often shared): read the ranges, not one number.
"""
import argparse
import os
import shlex
import statistics
import subprocess
import time


def run_once(cmd):
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def spread(xs):
    return f"{statistics.median(xs):7.2f} [{min(xs):7.2f}, {max(xs):7.2f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kvlab", default="build/kvlab")
    ap.add_argument("--dump", default="/tmp/kvlab_bench_7b4.h5")
    ap.add_argument("--layers", type=int, default=4, help="layers of the synthetic llama2-7b slice")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated configuration names to run")
    a = ap.parse_args()
    if not os.path.exists(a.dump):
        subprocess.run([a.kvlab, "synth", "--preset", "llama2-7b", "--layers", str(a.layers), a.dump],
                       check=True, stdout=subprocess.DEVNULL)
    base = [a.kvlab, "run", "-d", a.dump]
    configs = [
        ("floor", base + ["-c", "fp16", "--eval-every", "0", "--no-attention", "-j2"]),
        ("kivi-2bit -j2", base + ["-c", "kivi-2bit", "-j2"]),
        ("kivi-2bit -j1", base + ["-c", "kivi-2bit", "-j1"]),
        ("gear-2bit -j2", base + ["-c", "gear-2bit", "-j2"]),
        ("kivi-2bit eval512 -j2", base + ["-c", "kivi-2bit", "--eval-every", "512", "-j2"]),
    ]
    if a.only:
        wanted = set(a.only.split(","))
        configs = [c for c in configs if c[0] in wanted]
    print(f"dump {a.dump}; {a.repeats} runs each, interleaved; load average {os.getloadavg()[0]:.1f}", flush=True)
    results = {name: [] for name, _ in configs}
    for r in range(a.repeats):  # interleaved, so a burst of load hits every configuration
        for name, cmd in configs:
            results[name].append(run_once(cmd))
            wall, cpu, rss = results[name][-1]
            print(f"  run {r + 1} {name}: wall {wall:.2f} s, CPU {cpu:.2f} s, RSS {rss:.0f} MB", flush=True)
    print(f"{'configuration':24s} {'wall s: median [min, max]':>28s} {'CPU s: median [min, max]':>28s} {'peak RSS MB':>12s}")
    for name, cmd in configs:
        walls, cpus, rss = zip(*results[name])
        print(f"{name:24s} {spread(walls):>28s} {spread(cpus):>28s} {max(rss):12.0f}")
    if "kivi-2bit -j1" in results and "kivi-2bit -j2" in results:
        j1 = statistics.median(w for w, _, _ in results["kivi-2bit -j1"])
        j2 = statistics.median(w for w, _, _ in results["kivi-2bit -j2"])
        print(f"-j2 speed-up over -j1 (median wall): {j1 / j2:.2f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for name, cmd in configs:
        print(f"  {name}: {shlex.join(cmd)}")


if __name__ == "__main__":
    main()
