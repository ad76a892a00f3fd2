"""Small formatting helpers shared by assets and the report: markdown that escapes what it shows."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

# Characters markdown gives a meaning to in table cells: a backslash first (else a value's own `\|` would
# turn the escape of its `|` into a literal backslash and end the cell), the cell separator, and the
# brackets of links and images (a catalog name must not become a link or load a remote image in the UI).
_MD_ESCAPES = str.maketrans(
    {"\\": "\\\\", "|": "\\|", "[": "\\[", "]": "\\]", "`": "'", "\n": " ", "\r": " "}
)


def md_escape(value: Any) -> str:
    """Text safe inside a markdown table cell and any HTML a viewer renders it to."""
    return html.escape(str(value).translate(_MD_ESCAPES), quote=True)


def md_code(value: Any) -> str:
    """Text for an inline code span: shown literally by markdown (no escapes there), so only the backticks
    that would close the span and the line breaks that would end it are replaced."""
    return str(value).replace("`", "'").replace("\n", " ").replace("\r", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(md_escape(c) if not isinstance(c, int | float) else str(c) for c in row) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
