"""The status report (structure of the catalog owners' report) and its contact sheet, from real figures."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from catalog_assets.imaging import decode_image, font
from catalog_assets.util import human_bytes, md_code, md_escape, md_table

ERROR_LABELS = {
    "rate_limited": "Rate limiting",
    "content_policy": "Content policy",
    "transient": "Network timeouts / transient",
    "quota_exhausted": "Quota exhausted",
    "configuration": "Configuration (key, model)",
    "bad_request": "Bad request",
    "invalid_image": "Invalid image bytes",
    "coordination": "Coordination (locks)",
    "budget": "Budget limit reached",
    "unexpected": "Unexpected",
}


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0.0%"


def build_report(
    *,
    index: Mapping[str, Any],
    manifest_rows: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    failed_partitions: Sequence[str],
    contact_sheet_url: str | None,
) -> str:
    total = int(index.get("product_count", 0))
    quarantined = index.get("quarantined", [])
    sources = Counter(r.get("source") for r in manifest_rows)
    done = len(manifest_rows)
    failed = [o for o in outcomes.values() if o.get("outcome") == "failed"]
    missing = total - done - len(failed)
    size_total = sum(int(r.get("bytes") or 0) for r in manifest_rows)
    calls = sum(int(o.get("calls_total", o.get("attempts")) or 0) for o in outcomes.values())
    cost = sum(float(o.get("cost_usd") or 0.0) for o in outcomes.values())
    call_errors = Counter(e for o in outcomes.values() for e in o.get("errors_total", o.get("errors")) or [])
    final_errors = Counter(o.get("error_class") or "unknown" for o in failed)
    model = settings.get("model", "?")

    lines = ["# Product image generation — status report", ""]
    lines += ["## Overview", ""]
    lines.append(
        f"Images for the catalog `{md_code(index.get('source', '?'))}` ({total:,} valid products in "
        f"{len(index.get('partitions', []))} batches), generated with **{md_escape(settings.get('generator', '?'))}** "
        f"(model `{md_code(model)}`, {md_escape(settings.get('size', '?'))}, quality {md_escape(settings.get('quality', '?'))}) "
        f"and stored in `{md_code(settings.get('store', '?'))}` as JPEG with 300 px thumbnails."
    )
    lines += ["", "## Current Status", ""]
    status = [
        ("Total Products", f"{total:,}"),
        ("Progress", f"{pct(done, total)} ({done:,}/{total:,})"),
        ("Successful Images", f"{sources.get('generated', 0) + sources.get('refined', 0):,}"),
        ("Refined prompts (after a content-policy refusal)", f"{sources.get('refined', 0):,}"),
        ("Fallback images (offline product card)", f"{sources.get('fallback', 0):,}"),
        ("Failed Images", f"{len(failed):,}"),
        ("Not yet attempted", f"{max(missing, 0):,}"),
        ("Total Images Generated", f"{done:,}"),
        ("Total Size (MB)", f"{size_total / 1e6:.2f}"),
        ("Average Image Size", human_bytes(size_total / done) if done else "n/a"),
        ("Quarantined catalog rows", f"{len(quarantined):,} of {int(index.get('rows_read', 0)):,}"),
        ("Generator calls", f"{calls:,}" + (f" ({calls / done:.2f} per image)" if done else "")),
        ("Estimated cost", f"${cost:,.2f}"),
    ]
    lines += [f"- **{k}**: {v}" for k, v in status]
    lines += ["", "## Implementation Details", ""]
    details = [
        ("Generator", settings.get("generator")),
        ("Model", model),
        ("Size / quality", f"{settings.get('size')} / {settings.get('quality')}"),
        ("Concurrency per batch", settings.get("concurrency")),
        ("Rate limit", settings.get("rate_limit") or "none (offline renderer)"),
        ("Retry policy", settings.get("retry_policy")),
        ("Storage target", settings.get("store")),
        ("Manifest", settings.get("manifest_url")),
        ("Linked catalog", settings.get("linked_url")),
    ]
    lines += [f"- **{k}**: {md_escape(v)}" for k, v in details]
    lines += ["", "## Monitoring and Reporting", ""]
    lines += [
        "- Run history, logs and per-batch metadata: the Dagster UI (`dagster dev`), asset `product_images` "
        "(one partition per batch; its metadata lists each batch's failures).",
        "- Asset checks on `product_images`, `image_manifest` and `linked_catalog` (failure, fallback and "
        "content-policy rates, image validity, near-duplicates, store consistency, quarantine rate).",
        "- This report: asset `generation_report`; the manifest: asset `image_manifest`.",
    ]
    lines += ["", "## Error Analysis", ""]
    if call_errors:
        n = sum(call_errors.values())
        lines.append(
            f"Failed API calls by class ({n:,} of {calls:,} calls; retried, refined or fell back as their class asks):"
        )
        lines.append("")
        lines.append(
            md_table(
                ["class", "calls", "share of failures"],
                [[ERROR_LABELS.get(k, k), v, pct(v, n)] for k, v in call_errors.most_common()],
            )
        )
    else:
        lines.append("No API call failed.")
    if failed:
        lines += ["", f"Products that ended failed ({len(failed):,}):", ""]
        lines.append(
            md_table(
                ["class", "products", "share"],
                [[ERROR_LABELS.get(k, k), v, pct(v, len(failed))] for k, v in final_errors.most_common()],
            )
        )
        lines += [
            "",
            md_table(
                ["product", "class", "reason"],
                [
                    [o.get("product_id"), o.get("error_class"), (o.get("message") or "")[:160]]
                    for o in failed[:15]
                ],
            ),
        ]
    if quarantined:
        reasons = Counter(q["reason"].split(" (")[0] for q in quarantined)
        lines += ["", "Quarantined catalog rows by reason:", ""]
        lines.append(md_table(["reason", "rows"], reasons.most_common(10)))
    lines += ["", "## Sample Images", ""]
    samples = sample_rows(manifest_rows)
    if samples:
        lines.append(
            md_table(
                ["product", "source", "key"], [[r["product_id"], r.get("source"), r["key"]] for r in samples]
            )
        )
    if contact_sheet_url:
        lines += ["", f"Contact sheet: {contact_sheet_url}"]
    lines += ["", "## Next Steps / Recommendations", ""]
    lines += [
        f"- {r}"
        for r in recommendations(
            total=total,
            done=done,
            failed=failed,
            failed_partitions=failed_partitions,
            sources=sources,
            call_errors=call_errors,
            calls=calls,
            quarantined=quarantined,
            settings=settings,
        )
    ]
    return "\n".join(lines) + "\n"


def recommendations(
    *, total, done, failed, failed_partitions, sources, call_errors, calls, quarantined, settings
) -> list[str]:
    recs = []
    if failed_partitions:
        first = failed_partitions[0]
        recs.append(
            f"{len(failed)} products failed in {len(failed_partitions)} batches ({', '.join(failed_partitions[:5])}"
            f"{' …' if len(failed_partitions) > 5 else ''}): rerun them with `dagster asset materialize -m catalog_assets.definitions "
            f"--select product_images --partition {first}`, or let `failed_batches_retry_schedule` do it tonight."
        )
    if done + len(failed) < total:
        recs.append(
            f"{total - done - len(failed):,} products were never attempted: materialize the missing `product_images` partitions."
        )
    policy = call_errors.get("content_policy", 0)
    if calls and policy / calls > 0.05:
        recs.append(
            f"Content-policy refusals hit {pct(policy, calls)} of calls: review the descriptions of refined and fallback products for brand, people or body wording."
        )
    if sources.get("fallback"):
        recs.append(
            f"{sources['fallback']} products carry the offline fallback card: fix their descriptions and delete their images to regenerate them."
        )
    limited = call_errors.get("rate_limited", 0)
    if calls and limited / calls > 0.02:
        recs.append(
            f"{pct(limited, calls)} of calls were rate limited: lower `images_per_minute` to the account's real limit (or raise the limit with OpenAI)."
        )
    transient = call_errors.get("transient", 0)
    if calls and transient / calls > 0.05:
        recs.append(
            f"{pct(transient, calls)} of calls timed out or hit 5xx: check connectivity and the `timeout_s` setting."
        )
    if quarantined:
        recs.append(
            f"{len(quarantined)} catalog rows are quarantined: fix them in the source catalog (reasons above) and re-materialize `product_catalog`."
        )
    if settings.get("generator") == "offline renderer":
        recs.append(
            "Images come from the offline renderer: set OPENAI_API_KEY for photographic images, after a rehearsal against the stand-in API (README)."
        )
    if not recs:
        recs.append(f"All {total:,} products have images and every check figure is clean: nothing to do.")
    return recs


def sample_rows(rows: Sequence[Mapping[str, Any]], n: int = 16) -> list[Mapping[str, Any]]:
    if not rows:
        return []
    # spread over the catalog and show every source that occurs
    by_source: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        by_source.setdefault(r.get("source") or "", r)
    step = max(1, len(rows) // n)
    picked = list(by_source.values()) + [rows[i] for i in range(0, len(rows), step)]
    seen, out = set(), []
    for r in picked:
        if r["product_id"] not in seen:
            seen.add(r["product_id"])
            out.append(r)
    return out[:n]


def contact_sheet(thumbnails: Sequence[tuple[str, bytes]], columns: int = 4, cell: int = 240) -> bytes:
    """A PNG grid of thumbnails with their product ids."""
    rows = max(1, -(-len(thumbnails) // columns))
    label = 24
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    label_font = font(16)
    for i, (pid, data) in enumerate(thumbnails):
        x, y = (i % columns) * cell, (i // columns) * (cell + label)
        img = decode_image(data).convert("RGB")
        img.thumbnail((cell - 12, cell - 12))
        sheet.paste(img, (x + (cell - img.width) // 2, y + 6))
        draw.text((x + cell // 2, y + cell), pid, font=label_font, fill=(40, 40, 40), anchor="ma")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
