"""Parse kvlab spec strings (the grammar of src/kvlab/compressors/params.hpp).

    spec   := method [ ':' param ( ',' param )* ]
    param  := name '=' value
    value  := token | '(' spec ')'        (parenthesised: a nested compressor)

Only splitting is done here; kvlab itself validates and canonicalises.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SpecSyntaxError(ValueError):
    """A spec string that does not follow the grammar (message names it)."""


@dataclass(frozen=True)
class Spec:
    """A parsed spec: method name and parameters in their given order."""

    method: str
    params: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    nested: frozenset[str] = frozenset()  # names whose value was a parenthesised spec

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.params)


def _split_top_level(text: str, whole: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SpecSyntaxError(f"spec {whole!r}: unbalanced ')'")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise SpecSyntaxError(f"spec {whole!r}: unbalanced '('")
    parts.append(text[start:])
    return parts


def parse_spec(text: str) -> Spec:
    """``"h2o:heavy=0.1,inner=(uniform:bits=4)"`` -> Spec("h2o", (("heavy", "0.1"), ...)).

    Nested values keep their parentheses stripped: ``inner`` above is
    ``"uniform:bits=4"`` (parse it again with :func:`parse_spec`).
    """
    text = text.strip()
    method, sep, rest = text.partition(":")
    if not method or "=" in method or "(" in method:
        raise SpecSyntaxError(f"spec {text!r}: no method name")
    if not sep:
        return Spec(method)
    params, nested = [], set()
    for part in _split_top_level(rest, text):
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise SpecSyntaxError(f"spec {text!r}: parameter {part!r} is not name=value")
        if value.startswith("(") and value.endswith(")"):
            value = value[1:-1]
            nested.add(name.strip())
        params.append((name.strip(), value.strip()))
    return Spec(method, tuple(params), frozenset(nested))
