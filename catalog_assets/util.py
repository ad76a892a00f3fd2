"""Small formatting helpers shared by assets and the report: markdown that escapes what it shows."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


def md_escape(value: Any) -> str:
    """Text safe inside a markdown table cell and any HTML a viewer renders it to."""
    text = html.escape(str(value), quote=True)
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ").replace("`", "'")


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
