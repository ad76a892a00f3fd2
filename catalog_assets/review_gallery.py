"""The review gallery: one static HTML page in the store (`reports/review_gallery.html`) with every stored
image's thumbnail, its source and review badges and the review's alt text and caption; rejected images
first, then the rest by category. Pure: rows in, HTML out (every catalog value escaped)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from catalog_assets.resources.store import ImageStore

HTML = "text/html; charset=utf-8"
REJECTED = ("rejected", "rejected_by_person", "rejected_kept")
#: review status -> (badge label, css class)
REVIEW_BADGES = {
    "approved": ("approved", "ok"),
    "rejected": ("rejected in review", "bad"),
    "rejected_by_person": ("rejected by a person", "bad"),
    "rejected_kept": ("rejected, kept (retakes used)", "bad"),
    "unreviewed": ("not reviewed yet", "none"),
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #ddd}
.summary{color:#555;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:8px;padding:8px;font-size:12px}
.card.flagged{border:2px solid #c62828}
.card img{width:100%;aspect-ratio:1;object-fit:contain;background:#fff;border-radius:4px}
.id{font-weight:600;font-size:12px}.name{color:#444;margin:2px 0 4px}
.badge{display:inline-block;border-radius:10px;padding:1px 7px;margin:2px 2px 2px 0;font-size:11px;color:#fff}
.ok{background:#2e7d32}.bad{background:#c62828}.none{background:#757575}
.src-generated{background:#1565c0}.src-refined{background:#6a1b9a}.src-fallback{background:#ef6c00}
.src-other{background:#546e7a}
.issues{color:#c62828}.caption{color:#555;margin-top:4px}
"""


def gallery_base_href(store: ImageStore) -> str | None:
    """`../` when the store's URLs are relative to its root (the page lives under `reports/`), else None."""
    return None if "://" in store.url("reports/x") else "../"


def _card(row: Mapping[str, Any], product: Mapping[str, Any]) -> str:
    esc = html.escape
    status = str(row.get("review_status") or "unreviewed")
    label, css = REVIEW_BADGES.get(status, (status, "none"))
    review = row.get("review") or {}
    source = str(row.get("source") or "other")
    source_css = f"src-{source}" if source in ("generated", "refined", "fallback") else "src-other"
    retakes = int(row.get("retakes") or 0)
    issues = ", ".join(str(i).replace("_", " ") for i in review.get("issues") or [])
    url = row.get("thumbnail_url") or row.get("url") or ""
    alt = review.get("alt_text") or str(product.get("name") or row.get("product_id"))
    parts = [
        f'<div class="card{" flagged" if status in REJECTED else ""}" data-product="{esc(str(row["product_id"]))}"'
        f' data-status="{esc(status)}">',
        f'<img src="{esc(str(url))}" alt="{esc(str(alt))}" loading="lazy">',
        f'<div class="id">{esc(str(row["product_id"]))}</div>',
        f'<div class="name">{esc(str(product.get("name") or ""))}</div>',
        f'<span class="badge {source_css}">{esc(source)}</span>',
        f'<span class="badge {css}">{esc(label)}</span>',
    ]
    if retakes:
        parts.append(f'<span class="badge none">retakes {retakes}</span>')
    if review.get("offline"):
        parts.append('<span class="badge none">offline review</span>')
    if issues:
        parts.append(f'<div class="issues">{esc(issues)}</div>')
    if review.get("caption"):
        parts.append(f'<div class="caption">{esc(str(review["caption"]))}</div>')
    parts.append("</div>")
    return "".join(parts)


def review_gallery(
    rows: Sequence[Mapping[str, Any]],
    products: Sequence[Mapping[str, Any]],
    *,
    base_href: str | None = None,
    title: str = "Image review gallery",
) -> str:
    """The page for manifest `rows` (with `review` and `review_status`): a summary, the rejected images,
    then every other image under its category (categories and products in name order)."""
    by_id = {str(p.get("id")): p for p in products}
    statuses = Counter(str(r.get("review_status") or "unreviewed") for r in rows)
    rejected = sorted((r for r in rows if r.get("review_status") in REJECTED), key=lambda r: r["product_id"])
    rest: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("review_status") not in REJECTED:
            category = str((by_id.get(row["product_id"]) or {}).get("category") or "Uncategorised")
            rest.setdefault(category, []).append(row)
    summary = ", ".join(
        f"{n} {REVIEW_BADGES.get(s, (s,))[0]}" for s, n in sorted(statuses.items(), key=lambda kv: -kv[1])
    )
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<base href="{html.escape(base_href)}">' if base_href else "",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<div class="summary">{len(rows)} stored images: {html.escape(summary)}</div>',
        f'<h2 id="rejected">Rejected ({len(rejected)})</h2>',
        '<div class="grid">'
        + ("".join(_card(r, by_id.get(r["product_id"]) or {}) for r in rejected) or "<p>none</p>")
        + "</div>",
    ]
    for category in sorted(rest):
        members = sorted(rest[category], key=lambda r: r["product_id"])
        out.append(f"<h2>{html.escape(category)} ({len(members)})</h2>")
        out.append(
            '<div class="grid">'
            + "".join(_card(r, by_id.get(r["product_id"]) or {}) for r in members)
            + "</div>"
        )
    out.append("</body></html>")
    return "\n".join(line for line in out if line) + "\n"
