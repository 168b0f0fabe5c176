"""How the CLI prints: padded tables, JSON/YAML dumps, config messages in istioctl's form."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import click
import yaml

COLUMN_GAP = "  "

F = TypeVar("F", bound=Callable[..., Any])


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header row and rows, each column padded to its widest cell; no trailing spaces.

    Cells are turned into text with `str`, None becoming `-`. Ends without a newline.
    """
    text_rows = [[str(h) for h in headers]]
    for row in rows:
        cells = ["-" if cell is None else str(cell) for cell in row]
        if len(cells) != len(headers):
            raise ValueError(f"row has {len(cells)} cells, table has {len(headers)} columns")
        text_rows.append(cells)
    widths = [max(len(row[i]) for row in text_rows) for i in range(len(headers))]
    lines = []
    for row in text_rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append(COLUMN_GAP.join(padded).rstrip())
    return "\n".join(lines)


def to_json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def to_yaml_text(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")


def output_option(default: str = "table") -> Callable[[F], F]:
    """`-o/--output` with the given default (`table` or `text`) plus `json` and `yaml`."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice([default, "json", "yaml"]),
        default=default,
        show_default=True,
        help="Output format.",
    )


def echo_data(data: Any, output: str) -> None:
    """Print `data` as JSON or YAML (for `-o json|yaml`)."""
    click.echo(to_yaml_text(data) if output == "yaml" else to_json_text(data))


def format_message(message: Mapping[str, Any]) -> str:
    """One config message (ConfigMessage.to_json() form) as istioctl prints it.

    `Error [IST0101] bookinfo/vs.yaml: document 1, VirtualService default/reviews: …`;
    the message's own `text` carries the where and what.
    """
    severity = str(message.get("severity") or "error").capitalize()
    code = message.get("code")
    text = str(message.get("text") or message.get("message") or "")
    if text.startswith("warning: "):
        text = text[len("warning: ") :]
    head = f"{severity} [{code}]" if code else severity
    return f"{head} {text}"


def is_error(message: Mapping[str, Any]) -> bool:
    return str(message.get("severity") or "error") == "error"
