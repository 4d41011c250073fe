"""How every spec of a results folder is drawn: label, colour, marker, panel.

One :class:`Encoding` per folder keeps a spec's look the same in every
figure.  Each series (see :mod:`.ablation`) gets its own colour from
:data:`style.PALETTE` (families in a fixed order, FP16 black); inside a
series, dimension 0 is the shade (light = smallest value), dimension 1 the
marker; without a dimension 1 the marker is the method family's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import style
from .ablation import Dim, Facet, Series, Structure, choose_facet, plot_dims
from .catalog import Catalog
from .labels import ALIASES, Labeller, format_value, param_text


def dim_name(dim: Dim) -> str:
    """``r``, or ``hh=rec`` for parameters that change together."""
    return "=".join(ALIASES.get(p) or p for p in dim.params)


def dim_value(dim: Dim, value: float) -> str:
    """``0.05``, ``2.5%`` (prompt fractions)."""
    return format_value(dim.params[0], f"{value:g}")


def dim_value_text(dim: Dim, value: float) -> str:
    return f"{dim_name(dim)}={dim_value(dim, value)}"


@dataclass
class Encoding:
    labeller: Labeller
    families: dict[str, str]  # spec -> family
    facet: Optional[Facet] = None
    colors: dict[str, str] = field(default_factory=dict)  # series id -> colour

    @property
    def structure(self) -> Structure:
        return self.labeller.structure

    def label(self, spec: str) -> str:
        return self.labeller(spec)

    def family(self, spec: str) -> str:
        return self.families.get(spec, "")

    def series(self, spec: str) -> Series:
        return self.structure.series[self.structure.series_of[spec]]

    def dims(self, spec_or_series, faceted: bool = True) -> list[Dim]:
        """Dimensions encoded inside a panel; ``faceted=False`` for figures without facets."""
        series = (spec_or_series if isinstance(spec_or_series, Series)
                  else self.series(spec_or_series))
        return plot_dims(self.structure, series, self.facet if faceted else None)

    def series_color(self, series: Series) -> str:
        return self.colors.get(series.id, "#888888")

    def color(self, spec: str, faceted: bool = True):
        series = self.series(spec)
        dims = self.dims(series, faceted)
        base = self.series_color(series)
        if not dims or len(dims[0].values) < 2:
            return base
        parsed = self.structure.parsed[spec]
        return style.shade(base, dims[0].index(parsed) / (len(dims[0].values) - 1))

    def sort_key(self, spec: str) -> tuple:
        """Legend order: family, series, then the series' dimension values."""
        series = self.series(spec)
        parsed = self.structure.parsed[spec]
        return (style.family_rank(self.family(spec)), series.id,
                tuple(d.value(parsed) for d in series.dims), spec)

    def line_colors(self, specs) -> dict:
        """Colours for line plots of ``specs``: series colour, shaded light to dark over the
        specs shown of each series (ordered by their dimension values), so that every
        line differs even when only some of a series' specs are drawn."""
        colors = {}
        by_series: dict[str, list[str]] = {}
        for spec in specs:
            by_series.setdefault(self.structure.series_of[spec], []).append(spec)
        for series_id, members in by_series.items():
            series = self.structure.series[series_id]
            base = self.series_color(series)
            parsed = self.structure.parsed
            members = sorted(members, key=lambda s: tuple(d.value(parsed[s]) for d in series.dims))
            for i, spec in enumerate(members):
                level = i / (len(members) - 1) if len(members) > 1 else None
                colors[spec] = base if level is None else style.shade(base, level)
        return colors

    def marker(self, spec: str) -> str:
        dims = self.dims(spec)
        if len(dims) >= 2:
            index = dims[1].index(self.structure.parsed[spec])
            return style.DIM_MARKERS[index % len(style.DIM_MARKERS)]
        return style.family_marker(self.family(spec))

    def facet_value(self, spec: str) -> Optional[float]:
        return self.facet.value(self.structure.parsed[spec]) if self.facet else None

    def in_facet(self, spec: str, value: Optional[float]) -> bool:
        """Specs without the facet parameter appear in every panel."""
        own = self.facet_value(spec)
        return value is None or own is None or own == value

    def facet_text(self, value: float) -> str:
        dim = Dim((self.facet.param,), self.facet.values)
        return dim_value_text(dim, value)

    def series_label(self, series: Series) -> str:
        """The series' name: its spec's label when alone, else method + categorical values."""
        if len(series.specs) == 1:
            return self.label(series.specs[0])
        parsed = self.structure.parsed[series.specs[0]]
        parts = [param_text(n, v or None, n in parsed.nested, self.labeller.standalone)
                 for n, v in series.key]
        return " ".join([series.method] + [p for p in parts if p])

    def series_description(self, series: Series) -> str:
        """``gear: s 0→0.05 (darker = larger)`` for a legend."""
        dims = self.dims(series)
        name = self.series_label(series)
        if not dims:
            return name
        d = dims[0]
        return f"{name}: {dim_name(d)} {dim_value(d, d.values[0])}→{dim_value(d, d.values[-1])}"

    def ordered_series(self, specs) -> list[Series]:
        """Series of ``specs`` in legend order: family, then method, then series id."""
        ids = dict.fromkeys(self.structure.series_of[s] for s in specs)
        series = [self.structure.series[i] for i in ids]
        return sorted(series, key=lambda s: (style.family_rank(self.family(s.specs[0])),
                                             s.method, s.id))


def make_encoding(spec_families: dict[str, str], catalog: Catalog) -> Encoding:
    """The encoding of a folder's specs (``spec -> family``; unknown families from kvlab)."""
    specs = list(spec_families)
    labeller = Labeller(specs, catalog)
    families = {s: spec_families[s] or catalog.families.get(labeller.structure.parsed[s].method, "")
                for s in specs}
    encoding = Encoding(labeller, families, choose_facet(labeller.structure))
    palette = iter(style.PALETTE * 8)
    for series in encoding.ordered_series(specs):
        if encoding.family(series.specs[0]) == "baseline":
            encoding.colors[series.id] = style.BASELINE_COLOR
        else:
            encoding.colors[series.id] = next(palette)
    return encoding
