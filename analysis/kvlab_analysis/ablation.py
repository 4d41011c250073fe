"""The ablation structure of a results folder: what varies, and how.

Specs of one method are split into *series* by the parameters that vary and
are not numbers (a backbone, a boolean, a nested compressor, a base
selection): ``pyramidkv base=snapkv`` and ``pyramidkv base=h2o`` are two
series.  Inside a series the varying numeric parameters are the series'
*dimensions*, most distinct values first; parameters that always change
together (a ``zip:`` in the sweep file, e.g. H2O's heavy and recent budgets)
form one dimension.

Plots encode dimension 0 along a line (and by shade), dimension 1 by marker,
and the folder's *facet* dimension by panel (see :func:`choose_facet`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from .specs import Spec, SpecSyntaxError, parse_spec


def _is_number(value: Optional[str]) -> bool:
    if value is None:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Dim:
    """One numeric dimension: one parameter, or several that change together."""

    params: tuple[str, ...]
    values: tuple[float, ...]  # distinct values of params[0], ascending

    def value(self, spec: Spec) -> float:
        return float(spec.get(self.params[0]))

    def index(self, spec: Spec) -> int:
        return self.values.index(self.value(spec))


@dataclass
class Series:
    """Specs of one method that share their non-numeric parameters."""

    method: str
    key: tuple[tuple[str, str], ...]  # the categorical (name, value) pairs
    specs: list[str] = field(default_factory=list)
    dims: list[Dim] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.method + "".join(f"|{n}={v}" for n, v in self.key)


class Structure:
    """Series and dimensions of a set of canonical specs."""

    def __init__(self, specs: list[str]):
        self.parsed: dict[str, Spec] = {}
        for text in dict.fromkeys(specs):
            try:
                self.parsed[text] = parse_spec(text)
            except SpecSyntaxError:
                self.parsed[text] = Spec(text)  # unparsable: a method of its own
        self.categorical: dict[str, list[str]] = {}
        self.series: dict[str, Series] = {}
        self.series_of: dict[str, str] = {}
        by_method: dict[str, list[str]] = defaultdict(list)
        for text, spec in self.parsed.items():
            by_method[spec.method].append(text)
        for method, texts in by_method.items():
            self._split_method(method, texts)

    def _varying(self, texts: list[str]) -> list[str]:
        specs = [self.parsed[t] for t in texts]
        names = list(dict.fromkeys(n for s in specs for n, _ in s.params))
        # A parameter absent from a canonical spec has no effect there (kvlab
        # leaves inapplicable parameters out): it varies only if the specs
        # that have it disagree.
        return [n for n in names if len({s.get(n) for s in specs if s.get(n) is not None}) > 1]

    def _split_method(self, method: str, texts: list[str]) -> None:
        varying = self._varying(texts)
        categorical = [n for n in varying
                       if not all(_is_number(self.parsed[t].get(n)) for t in texts)]
        self.categorical[method] = categorical
        groups: dict[tuple, Series] = {}
        for text in texts:
            spec = self.parsed[text]
            key = tuple((n, spec.get(n) or "") for n in categorical)
            series = groups.setdefault(key, Series(method, key))
            series.specs.append(text)
        for series in groups.values():
            series.dims = self._dims(series.specs)
            self.series[series.id] = series
            for text in series.specs:
                self.series_of[text] = series.id

    def _dims(self, texts: list[str]) -> list[Dim]:
        specs = [self.parsed[t] for t in texts]
        numeric = [n for n in self._varying(texts) if all(_is_number(s.get(n)) for s in specs)]
        groups: list[list[str]] = []
        for name in numeric:  # merge parameters that split the specs the same way
            partition = _partition(specs, name)
            for group in groups:
                if _partition(specs, group[0]) == partition:
                    group.append(name)
                    break
            else:
                groups.append([name])
        dims = [Dim(tuple(g), tuple(sorted({float(s.get(g[0])) for s in specs}))) for g in groups]
        order = {name: i for i, name in enumerate(numeric)}
        return sorted(dims, key=lambda d: (-len(d.values), order[d.params[0]]))

    def varying_in_series(self, text: str) -> set[str]:
        """Parameters a label shows: the method's categorical ones, the series' numeric ones."""
        spec = self.parsed[text]
        series = self.series[self.series_of[text]]
        return set(self.categorical.get(spec.method, [])) | {
            p for d in series.dims for p in d.params}

    def largest_series(self) -> Optional[Series]:
        if not self.series:
            return None
        return max(self.series.values(), key=lambda s: (len(s.specs), -len(s.id)))


def _partition(specs: list[Spec], name: str) -> frozenset:
    groups: dict[Optional[str], set[int]] = defaultdict(set)
    for i, spec in enumerate(specs):
        groups[spec.get(name)].add(i)
    return frozenset(frozenset(g) for g in groups.values())


@dataclass(frozen=True)
class Facet:
    """Panels by one parameter's value; specs without it appear in every panel."""

    param: str
    values: tuple[float, ...]

    def value(self, spec: Spec) -> Optional[float]:
        raw = spec.get(self.param)
        if not _is_number(raw) or float(raw) not in self.values:
            return None
        return float(raw)


def choose_facet(structure: Structure, max_values: int = 5) -> Optional[Facet]:
    """Facet by the largest series' smallest dimension when it has three or more."""
    series = structure.largest_series()
    if series is None or len(series.dims) < 3:
        return None
    dim = min(series.dims, key=lambda d: len(d.values))
    if len(dim.values) > max_values:
        return None
    return Facet(dim.params[0], dim.values)


def plot_dims(structure: Structure, series: Series, facet: Optional[Facet]) -> list[Dim]:
    """A series' dimensions left to encode inside one panel (the facet's removed)."""
    return [d for d in series.dims if facet is None or facet.param not in d.params]
