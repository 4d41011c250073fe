"""Real kvlab output for the analysis tests (not a test itself: ctest runs test_*.py).

``make_results`` runs a small `kvlab sweep` on the bundled dumps: FP16, two
presets (KIVI, H2O), StreamingLLM, and a GEAR ablation over rank (3 values)
and sparsity (2 values); one extra dump is a copy of synth-tiny with a NaN in
layer 1, so its jobs fail the way real ones do.  ``make_decode_csvs`` runs
`kvlab decode --csv` on both bundled Shakespeare dumps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
SKIP = 77  # ctest's SKIP_RETURN_CODE for the Python tests

SWEEP = """\
name: analysis-e2e
dumps: [{synth}, {shakespeare}, broken.kvdump.h5]
replay: {{eval_every: 48, max_steps: 192, layers: [0, 1]}}
metrics: [reconstruction, attention]
threads: 2
compressors:
  - fp16
  - kivi-2bit
  - h2o-20pct
  - streaming-20pct
  - {{method: gear, bits: 2, rank: [0, 2, 4], sparsity: [0, 0.05]}}
"""


def skip(reason: str) -> None:
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def kvlab_binary() -> Optional[Path]:
    """$KVLAB_BIN (set by ctest), else build/kvlab of this checkout."""
    for candidate in (os.environ.get("KVLAB_BIN"), str(REPO / "build" / "kvlab")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def require_kvlab() -> Path:
    kvlab = kvlab_binary()
    if kvlab is None:
        skip("no kvlab binary (set KVLAB_BIN or build build/kvlab)")
    return kvlab


def _broken_copy(target: Path) -> None:
    import h5py
    import numpy as np
    shutil.copy(DATA / "synth-tiny.kvdump.h5", target)
    with h5py.File(target, "r+") as handle:
        keys = handle["layers/1/keys"][...]
        keys[0, 5, 3] = np.nan
        handle["layers/1/keys"][...] = keys


def make_results(tmp: Path, kvlab: Path) -> Path:
    """Run the sweep into ``tmp/results``; return that folder."""
    _broken_copy(tmp / "broken.kvdump.h5")
    plan = tmp / "sweep.yaml"
    plan.write_text(SWEEP.format(synth=DATA / "synth-tiny.kvdump.h5",
                                 shakespeare=DATA / "shakespeare-a.kvdump.h5"), encoding="utf-8")
    out = tmp / "results"
    proc = subprocess.run([str(kvlab), "-q", "sweep", str(plan), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    if not (out / "summary.csv").is_file():
        raise RuntimeError(f"kvlab sweep wrote no summary.csv (exit {proc.returncode}): "
                           f"{proc.stderr.strip()}")
    if proc.returncode == 0:
        raise RuntimeError("kvlab sweep with a corrupt dump exited 0")
    return out


def make_decode_csvs(tmp: Path, kvlab: Path, steps: int = 24) -> Path:
    """kivi-2bit and fp16, teacher-forced on both Shakespeare dumps, kivi-2bit free-running
    on one; the CSVs go to ``tmp/decode``, which is returned."""
    out = tmp / "decode"
    out.mkdir()
    runs = [("kivi-2bit", "teacher", "a"), ("kivi-2bit", "teacher", "b"),
            ("fp16", "teacher", "a"), ("fp16", "teacher", "b"), ("kivi-2bit", "free", "a")]
    for compressor, mode, dump in runs:
        csv = out / f"{compressor}-{mode}-{dump}.csv"
        subprocess.run([str(kvlab), "-q", "decode", "--model", str(DATA / "tiny-lm" / "model.h5"),
                        "--dump", str(DATA / f"shakespeare-{dump}.kvdump.h5"), "--compressor",
                        compressor, "--mode", mode, "--steps", str(steps), "-j", "2",
                        "--csv", str(csv)], check=True, capture_output=True, timeout=600)
    return out
