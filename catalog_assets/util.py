"""Small formatting helpers shared by assets and the report: markdown that escapes what it shows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# What markdown gives a meaning to in text and table cells, and nothing else (a quote stays a quote): a
# backslash first (else a value's own `\|` would turn the escape of its `|` into a literal backslash and end
# the cell), the cell separator, the brackets of links and images (a catalog name must not become a link or
# load a remote image in the UI), code and emphasis marks, and `<`/`>`, which would open raw HTML.
_MD_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "[": "\\[",
        "]": "\\]",
        "`": "\\`",
        "*": "\\*",
        "<": "&lt;",
        ">": "&gt;",
        "\n": " ",
        "\r": " ",
    }
)
# An ampersand that would start a character reference ("&lt;", "&#60;") is shown as itself.
_ENTITY_START = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md_escape(value: Any) -> str:
    """Text shown as itself in markdown (and in a table cell), whatever the HTML a viewer renders it to."""
    return _ENTITY_START.sub("&amp;", str(value)).translate(_MD_ESCAPES)


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
    """Decimal units throughout (1 kB = 1,000 bytes, 1 MB = 1,000,000), as the report's MB totals."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
