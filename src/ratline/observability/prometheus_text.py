"""The Prometheus text exposition format: parsing samples and writing them (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float


class ParseError(ValueError):
    pass


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(text: str, start: int) -> tuple[Labels, int]:
    """Parse `{a="x",b="y"}` starting at `text[start] == '{'`; returns labels, end index."""
    labels: list[tuple[str, str]] = []
    i = start + 1
    n = len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i < n and text[i] == "}":
            return tuple(labels), i + 1
        eq = text.index("=", i)
        key = text[i:eq].strip()
        if text[eq + 1] != '"':
            raise ParseError(f"label {key}: value not quoted")
        j = eq + 2
        chunk = []
        while True:
            quote = text.index('"', j)
            backslashes = 0
            k = quote - 1
            while k >= j and text[k] == "\\":
                backslashes += 1
                k -= 1
            chunk.append(text[j:quote])
            if backslashes % 2 == 0:
                break
            chunk.append('"')
            j = quote + 1
        raw = "".join(chunk)
        labels.append((key, _unescape(raw) if "\\" in raw else raw))
        i = quote + 1
    raise ParseError("unterminated label set")


def parse_line(line: str) -> Sample | None:
    """One sample line; None for comments and blank lines."""
    if not line or line[0] == "#":
        return None
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        labels, end = _labels(line, brace)
        rest = line[end:].split()
    else:
        name = line[:space]
        labels = ()
        rest = line[space:].split()
    if not rest:
        raise ParseError(f"{name}: no value")
    return Sample(name, labels, float(rest[0]))


def parse(text: str) -> Iterator[Sample]:
    for line in text.splitlines():
        sample = parse_line(line.strip())
        if sample is not None:
            yield sample


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def sample_line(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{escape(v)}"' for k, v in labels)
        return f"{name}{{{inner}}} {format_value(value)}"
    return f"{name} {format_value(value)}"


def family_header(name: str, kind: str, help_text: str = "") -> Iterable[str]:
    if help_text:
        yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
