"""Short labels for canonical specs.

A label is the preset's name when the spec equals a preset (``kivi-2bit``),
otherwise the method followed by the parameters that vary between this
method's specs in the results folder, plus those that differ from the
method's default (``gear b=2 r=8 s=0.05``, ``snapkv C=128``).  Long parameter
names get short aliases (:data:`ALIASES`); fractions of the prompt print as
percentages; a nested compressor prints as ``+<its label>``.  Labels are
unique within a folder; the full spec stays in the CSV files.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

from .ablation import Structure
from .catalog import Catalog
from .specs import Spec, SpecSyntaxError, parse_spec

# Parameter name -> short name. "" prints the value alone (choices such as a backbone).
ALIASES = {
    "bits": "b", "group": "G", "residual": "R", "sparsity": "s", "rank": "r",
    "rank_decode": "r_dec", "buffer": "nb", "recompress": "recomp", "compat_outliers": "compat",
    "backbone": "", "axis": "", "base": "", "pool": "",
    "heavy": "hh", "recent": "rec", "heavy_tokens": "hh", "recent_tokens": "rec",
    "window": "win", "window_tokens": "win", "capacity": "C", "capacity_ratio": "C",
    "kernel": "k", "sketch": "m", "value_bits": "vb", "value_group": "vG",
    "outliers": "out", "fp16_tokens": "fp16", "per_layer": "per_layer",
}
# Parameters that are a fraction of the prompt length in some methods (H2O's
# heavy/recent, StreamingLLM's window): values below 1 are shown as
# percentages. The same names are token counts elsewhere (SKVQ's and SnapKV's
# window = 32), and a count is at least 1, so it is shown as it is.
PROMPT_FRACTIONS = {"heavy", "recent", "window", "capacity_ratio"}
# What each alias means, for the report's legend.
ALIAS_MEANINGS = {
    "b": "bits per element", "G": "group size", "R": "FP16 residual length (tokens)",
    "s": "outlier fraction (sparsity)", "r": "low-rank rank", "r_dec": "decode-segment rank",
    "nb": "FP16 buffer n_b (tokens)", "recomp": "recompress the whole cache",
    "hh": "heavy hitters (tokens, or % of the prompt)",
    "rec": "recent window (tokens, or % of the prompt)",
    "win": "window (tokens, or % of the prompt)", "C": "capacity (tokens, or % of the prompt)",
    "k": "pooling kernel", "m": "sketch dimension", "vb": "value bits", "vG": "value group",
    "out": "dense-and-sparse outlier fraction", "fp16": "first tokens kept FP16",
}


def _number(value: str) -> Optional[float]:
    try:
        return float(value)
    except ValueError:
        return None


def format_value(name: str, value: str) -> str:
    """A parameter value as shown in labels (``0.1`` -> ``10%`` for prompt
    fractions; a token count such as ``window=32`` unchanged)."""
    number = _number(value)
    if name in PROMPT_FRACTIONS and number is not None and 0 <= number < 1:
        return f"{number * 100:g}%"
    return value


def param_text(name: str, value: Optional[str], nested: bool, sublabel) -> str:
    """``r=4``, ``recomp``, ``kcvt``, ``+uniform-4bit``; "" for an absent or false flag."""
    if value is None or value == "false":
        return ""
    if nested:
        return "+" + sublabel(value) if value else ""
    alias = ALIASES.get(name, name)
    if value == "true":
        return alias or name
    return format_value(name, value) if alias == "" else f"{alias}={format_value(name, value)}"


class Labeller:
    """Labels for every spec of one results folder (see the module docstring)."""

    def __init__(self, specs: Iterable[str], catalog: Catalog):
        self.catalog = catalog
        self.specs = list(dict.fromkeys(specs))
        self.parsed: dict[str, Optional[Spec]] = {}
        for text in self.specs:
            try:
                self.parsed[text] = parse_spec(text)
            except SpecSyntaxError:
                self.parsed[text] = None
        self.structure = Structure(self.specs)
        self.aliases_used: set[str] = set()
        self.labels = self._unique(self._first_labels())

    def __call__(self, spec: str) -> str:
        return self.labels.get(spec) or self.standalone(spec)

    def _default(self, method: str) -> Optional[Spec]:
        text = self.catalog.defaults.get(method)
        try:
            return parse_spec(text) if text else None
        except SpecSyntaxError:
            return None

    def _shown(self, text: str, spec: Spec, extra: set[str] = frozenset()) -> list[str]:
        default = self._default(spec.method)
        varying = self.structure.varying_in_series(text)
        names = []
        for name, value in spec.params:
            differs = default is not None and default.get(name) != value
            if name in varying or differs or name in extra:
                names.append(name)
        return names

    def _compose(self, spec: Spec, names: list[str]) -> str:
        parts = [param_text(n, spec.get(n), n in spec.nested, self.standalone) for n in names]
        self.aliases_used |= {ALIASES[n] for n, part in zip(names, parts)
                              if part and ALIASES.get(n) in ALIAS_MEANINGS}
        return " ".join([spec.method] + [p for p in parts if p])

    def standalone(self, text: str) -> str:
        """Label of a spec on its own: preset name, else method + non-default params."""
        if (preset := self.catalog.preset_for(text)) is not None:
            return preset
        try:
            spec = parse_spec(text)
        except SpecSyntaxError:
            return text
        default = self._default(spec.method)
        names = [n for n, v in spec.params if default is None or default.get(n) != v]
        if default is None:  # without kvlab's defaults, only nested specs are worth showing
            names = [n for n in names if n in spec.nested]
        return self._compose(spec, names)

    def _first_labels(self) -> dict[str, str]:
        labels = {}
        for text, spec in self.parsed.items():
            preset = self.catalog.preset_for(text)
            if preset is not None:
                labels[text] = preset
            elif spec is None:
                labels[text] = text
            else:
                labels[text] = self._compose(spec, self._shown(text, spec))
        return labels

    def _unique(self, labels: dict[str, str]) -> dict[str, str]:
        """Add the parameters that tell colliding specs apart; number what is left."""
        groups: dict[str, list[str]] = defaultdict(list)
        for text, label in labels.items():
            groups[label].append(text)
        for label, texts in groups.items():
            if len(texts) < 2:
                continue
            specs = [self.parsed[t] for t in texts]
            if all(s is not None for s in specs):
                names = {n for s in specs for n, _ in s.params}
                extra = {n for n in names if len({s.get(n) for s in specs}) > 1}
                for text, spec in zip(texts, specs):
                    shown = self._shown(text, spec, extra)
                    parts = [f"{ALIASES.get(n, n) or n}={spec.get(n)}" for n in shown
                             if n in extra and spec.get(n) in ("false", "")]
                    labels[text] = " ".join([self._compose(spec, shown)] + parts)
        seen: dict[str, int] = defaultdict(int)
        for text in self.specs:  # anything still equal gets a number, in spec order
            seen[labels[text]] += 1
        counter: dict[str, int] = defaultdict(int)
        for text in self.specs:
            if seen[labels[text]] > 1:
                counter[labels[text]] += 1
                labels[text] = f"{labels[text]} #{counter[labels[text]]}"
        return labels


def nested_methods(specs: Iterable[str]) -> set[str]:
    """Every method named in ``specs``, nested ones (``inner=(...)``) included."""
    methods, todo = set(), list(specs)
    while todo:
        try:
            spec = parse_spec(todo.pop())
        except SpecSyntaxError:
            continue
        methods.add(spec.method)
        todo += [spec.get(name) for name in spec.nested if spec.get(name)]
    return methods
