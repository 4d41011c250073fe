"""What kvlab itself knows about specs: preset names, method defaults, families.

Labels use a preset's name when a result's canonical spec equals that
preset's canonical spec, and show a parameter when it differs from the
method's default.  Both need kvlab's own canonicalisation (defaults filled in,
values normalised), so this module asks the kvlab binary:

* ``kvlab list`` gives the preset names and each method's family;
* ``kvlab sweep --dry-run`` on a one-line plan gives the canonical spec of a
  preset or of a bare method name (its defaults).  One plan per name, because
  a sweep runs duplicate configurations once and would hide which was which.

Without a binary (none given, none at build/kvlab, none on PATH) the catalog
is empty and labels fall back to "method + parameters that vary".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

REPO = Path(__file__).resolve().parents[2]
PROBE_DUMP = REPO / "data" / "synth-tiny.kvdump.h5"  # any valid dump will do for a dry run
_JOB_ROW = re.compile(r"^[0-9a-f]{16}\s")


@dataclass
class Catalog:
    """canonical spec -> preset name, method -> canonical default spec, method -> family."""

    presets: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)
    source: str = "kvlab not found: no preset names, no defaults"

    def preset_for(self, spec: str) -> Optional[str]:
        return self.presets.get(spec)


def find_kvlab(explicit: Optional[str] = None) -> Optional[Path]:
    """--kvlab, then $KVLAB_BIN, then build/kvlab of this checkout, then PATH."""
    for candidate in (explicit, os.environ.get("KVLAB_BIN"), str(REPO / "build" / "kvlab"),
                      shutil.which("kvlab")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def parse_list_output(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(preset name -> spec as written, method -> family) from `kvlab list`."""
    presets: dict[str, str] = {}
    families: dict[str, str] = {}
    in_presets = False
    for line in text.splitlines():
        if line.startswith("Presets"):
            in_presets = True
            continue
        header = re.match(r"^([A-Za-z0-9_-]+)\s+\[([A-Za-z0-9_-]+)\]\s*$", line)
        if header and not in_presets:
            families[header.group(1)] = header.group(2)
        elif in_presets and line.startswith("  ") and not line.strip().startswith("preset "):
            parts = line.split()
            if len(parts) >= 2:
                presets[parts[0]] = parts[1]
    return presets, families


def _canonical(kvlab: Path, text: str, workdir: Path, index: int) -> Optional[str]:
    plan = workdir / f"probe{index}.yaml"
    plan.write_text(f"name: probe{index}\ndumps: [{str(PROBE_DUMP)!r}]\n"
                    f"compressors: [{text!r}]\n", encoding="utf-8")
    try:
        proc = subprocess.run([str(kvlab), "-q", "sweep", str(plan), "--dry-run",
                               "--out", str(workdir / f"out{index}")],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line for line in proc.stdout.splitlines() if _JOB_ROW.match(line)]
    if proc.returncode != 0 or len(rows) != 1:
        return None
    return rows[0].split(None, 2)[2].strip()


def build_catalog(methods: Iterable[str], kvlab: Optional[Path]) -> Catalog:
    """Presets and defaults of the given methods, canonicalised by ``kvlab``."""
    if kvlab is None:
        return Catalog()
    if not PROBE_DUMP.is_file():
        return Catalog(source=f"{PROBE_DUMP} missing: no preset names, no defaults")
    try:
        listing = subprocess.run([str(kvlab), "list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Catalog(source=f"{kvlab} list failed ({exc}): no preset names")
    presets, families = parse_list_output(listing.stdout)
    methods = sorted(set(methods))
    wanted = [name for name, spec in presets.items() if spec.split(":")[0] in methods]
    names = wanted + methods
    with tempfile.TemporaryDirectory(prefix="kvlab-catalog-") as tmp, \
            ThreadPoolExecutor(max_workers=4) as pool:
        canon = list(pool.map(lambda item: _canonical(kvlab, item[1], Path(tmp), item[0]),
                              enumerate(names)))
    resolved = dict(zip(names, canon))
    catalog = Catalog(families=families, source=f"preset names and defaults from {kvlab}")
    for name in wanted:
        if resolved[name] and resolved[name] not in catalog.presets:
            catalog.presets[resolved[name]] = name
    for method in methods:
        if resolved[method]:
            catalog.defaults[method] = resolved[method]
    return catalog
