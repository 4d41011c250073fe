"""A written figure and what it shows (for report.md, report.html and the file list)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class Figure:
    stem: str          # file name without extension
    title: str         # one line
    caption: str       # what it shows and how to read it
    paths: list[Path] = field(default_factory=list)  # PNG first, then PDF

    @property
    def png(self) -> Optional[Path]:
        return next((p for p in self.paths if p.suffix == ".png"), None)


def slug(text: str) -> str:
    """A file-name-safe form of a label or dump name: ``gear b=2 r=4`` -> ``gear_b2_r4``."""
    out = []
    for char in text:
        if char.isalnum() or char in "-.":
            out.append(char)
        elif char in " _+/:,()%":
            out.append("_" if char != "%" else "pct")
        # '=' and anything else is dropped
    name = "_".join(part for part in "".join(out).split("_") if part)
    return name.strip("._-") or "x"
