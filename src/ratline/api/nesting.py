"""How deep a YAML text nests, found by scanning before parsing.

libyaml's composer recurses once per nesting level, so a document nested tens of
thousands deep (a few hundred KB of `[`) overflows the C stack and kills the process,
which no `except` can catch. `too_deep` finds such a document from its text alone: block
nesting from indentation and `- ` markers, flow nesting from unquoted `[`/`{`.
"""

from __future__ import annotations

MAX_NESTING = 100
"""Deepest nesting accepted in a document (real Istio config stays far below)."""

_SCALAR_START = " \t[{,:"


def too_deep(text: str, limit: int = MAX_NESTING) -> int | None:
    """The 1-based line where nesting first exceeds `limit`, or None if it never does."""
    block: list[int] = []
    flow = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        if flow == 0:
            column = len(line) - len(content)
            while block and block[-1] >= column:
                block.pop()
            block.append(column)
            while content == "-" or content.startswith("- "):
                column += 2
                content = content[1:].lstrip(" ")
                block.append(column)
            if len(block) > limit:
                return lineno
        flow, deepest = _scan_flow(line, flow)
        if deepest + len(block) > limit:
            return lineno
    return None


def _scan_flow(line: str, depth: int) -> tuple[int, int]:
    """(flow depth after `line`, deepest flow depth within it), starting at `depth`."""
    quote = ""
    previous = " "
    deepest = depth
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and previous in _SCALAR_START:
            quote = char
        elif char == "#" and previous in " \t":
            break
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth > 0:
            depth -= 1
        previous = char
    return depth, deepest
