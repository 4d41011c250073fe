"""A black-box fuzz campaign against the kvlab executable (docs/reliability.md).

Mutates the committed seeds (tests/fuzz/corpus/<kind>/ and regressions/) and
runs kvlab on each mutant as a user would:

  dump   kvlab inspect MUTANT.h5  (every 4th: kvlab run -d MUTANT.h5 -c kivi-2bit)
  spec   kvlab run -d GOOD.h5 -c MUTANT-SPEC
  yaml   kvlab sweep --dry-run MUTANT.yaml   (next to a good a.h5 and base.yaml)

Every run must exit 0, or exit 1 with exactly one stderr line
"kvlab: error: ..." (naming the file, for dumps), within the timeout and below
the RSS limit. Anything else -- a signal, a hang, exit 2 ("unexpected error"),
several lines, an unnamed error, too much memory -- is a finding; its input is
kept in OUT/findings/.

Usage: /usr/bin/python3 tests/fuzz/cli_campaign.py --kvlab build/kvlab [--runs 3000] [--seed 1]
       [--kinds dump,spec,yaml] [--out /tmp/kvlab-campaign] [--timeout 60] [--rss-mb 500]
"""
import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def seeds(kind):
    out = []
    for sub in ("corpus", "regressions"):
        d = os.path.join(HERE, sub, {"yaml": "sweep_yaml"}.get(kind, kind))
        if os.path.isdir(d):
            out += [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))]
    return out


def dictionary(kind):
    path = os.path.join(HERE, {"spec": "spec.dict", "yaml": "sweep_yaml.dict"}.get(kind, ""))
    if not os.path.isfile(path):
        return []
    words = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith('"') and line.endswith('"'):
            words.append(line[1:-1].encode().decode("unicode_escape").encode("latin-1"))
    return words


def mutate(data, rng, pool, words):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:  # flip a bit
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # set a byte to an interesting value
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2 and b:  # overwrite 2/4/8 bytes with an extreme integer
            n = rng.choice([2, 4, 8])
            p = rng.randrange(max(1, len(b) - n))
            b[p:p + n] = rng.choice([b"\xff" * n, b"\x00" * n, b"\x7f" + b"\xff" * (n - 1),
                                     (1 << rng.randrange(8 * n)).to_bytes(n, "little")])
        elif op == 3 and b:  # delete a range
            n = rng.randint(1, 16)
            del b[pos:pos + n]
        elif op == 4:  # insert random bytes
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5 and words:  # insert a dictionary word
            b[pos:pos] = rng.choice(words)
        elif op == 6 and b:  # duplicate a range
            p = rng.randrange(len(b))
            b[pos:pos] = b[p:p + rng.randint(1, 64)]
        elif op == 7:  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + other[cut:cut + rng.randint(1, 256)] + b[pos:]
    return bytes(b)


def run(cmd, cwd, timeout):
    """(exit status or -signal or 'timeout', stderr text, peak RSS in MB)."""
    err_path = os.path.join(cwd, ".stderr")
    with open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
                return "timeout", "", 0
            time.sleep(0.005)
    p.returncode = 0  # reaped above
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return rc, open(err_path, "rb").read().decode("utf-8", "replace"), usage.ru_maxrss // 1024


def classify(rc, stderr, rss_mb, must_name, rss_limit):
    lines = stderr.rstrip("\n").split("\n") if stderr.strip() else []
    if rc == "timeout":
        return "FINDING hang"
    if isinstance(rc, int) and rc < 0:
        return f"FINDING signal {signal.Signals(-rc).name}"
    if rss_mb >= rss_limit:
        return f"FINDING rss {rss_mb} MB"
    if rc == 0:
        return "ok"
    if rc != 1:
        return f"FINDING exit {rc}"
    if len(lines) != 1 or not lines[0].startswith("kvlab: error: "):
        return "FINDING not one error line"
    if must_name and must_name not in lines[0]:
        return "FINDING unnamed error"
    if "corrupt file: reading" in lines[0]:
        return "clean error (crash caught by the probe process)"
    return "clean error"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kvlab", required=True)
    ap.add_argument("--runs", type=int, default=3000, help="runs per kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default="dump,spec,yaml")
    ap.add_argument("--out", default="/tmp/kvlab-campaign")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--rss-mb", type=int, default=500)
    a = ap.parse_args()
    kvlab = os.path.abspath(a.kvlab)
    work = os.path.join(a.out, "work")
    findings = os.path.join(a.out, "findings")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(work)
    os.makedirs(findings)
    good = os.path.join(work, "a.h5")
    subprocess.run([kvlab, "synth", good, "--layers", "2", "--heads", "2", "--kv-heads", "1", "--head-dim", "8",
                    "--tokens", "16", "--prompt", "8"], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(work, "base.yaml"), "w") as f:
        f.write("name: base\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {eval_every: 4}\n")

    rng = random.Random(a.seed)
    total = collections.Counter()
    for kind in a.kinds.split(","):
        pool, words = seeds(kind), dictionary(kind)
        counts = collections.Counter()
        start = time.monotonic()
        for i in range(a.runs):
            data = mutate(rng.choice(pool), rng, pool, words)
            if kind == "dump":
                path = os.path.join(work, "mutant.h5")
                open(path, "wb").write(data)
                cmd = [kvlab, "run", "-d", path, "-c", "kivi-2bit"] if i % 4 == 3 else [kvlab, "inspect", path]
                must_name = path
            elif kind == "spec":
                path = os.path.join(work, "mutant.spec")
                open(path, "wb").write(data)
                if b"\x00" in data:  # an argv string cannot hold NUL: cut there, as a shell would
                    data = data.split(b"\x00")[0]
                cmd = [kvlab, "run", "-d", good, "-c", data.decode("utf-8", "surrogateescape")]
                must_name = ""
            else:
                path = os.path.join(work, "mutant.yaml")
                open(path, "wb").write(data)
                cmd = [kvlab, "--quiet", "sweep", "--dry-run", "mutant.yaml"]
                must_name = ""
            if kind == "spec" and not data.strip():
                counts["skipped (empty)"] += 1
                continue
            rc, stderr, rss = run(cmd, work, a.timeout)
            verdict = classify(rc, stderr, rss, must_name, a.rss_mb)
            counts[verdict] += 1
            if verdict.startswith("FINDING"):
                keep = os.path.join(findings, f"{kind}-{i}{os.path.splitext(path)[1]}")
                shutil.copy(path, keep)
                print(f"{verdict}: {keep}: {stderr.strip()[:300]!r}", flush=True)
        total.update({f"{kind}: {k}": v for k, v in counts.items()})
        print(f"{kind}: {a.runs} runs in {time.monotonic() - start:.0f} s: {dict(counts)}", flush=True)
    bad = sum(v for k, v in total.items() if "FINDING" in k)
    print(f"campaign: {bad} finding(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
