"""The status report (structure of the catalog owners' report) and its contact sheet, from real figures."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw

from catalog_assets import image_figures
from catalog_assets.call_ledger import EMBEDDINGS, REVIEW, CallSummary
from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.imaging import decode_image, font
from catalog_assets.outcomes import calls_total, errors_total
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


@dataclass(frozen=True)
class BatchRun:
    """The run that wrote a batch's last outcomes, as the Dagster instance knows it."""

    partition: str
    run_id: str
    model: str | None  # the generator model the batch ran with
    started: float | None = None  # None: the run is not in this instance
    ended: float | None = None
    max_calls_per_product: int | None = None
    generation_mode: str = "sync"  # sync: Images API calls; batch: the Batch API


@dataclass(frozen=True)
class CheckLine:
    """The latest execution of one asset check (status "not run yet" when it never ran)."""

    name: str
    asset: str
    status: str
    severity: str | None = None
    description: str | None = None
    run_id: str | None = None
    when: float | None = None


@dataclass(frozen=True)
class ReportRun:
    """When and by which run the report is written, the batches' runs and the checks' latest results."""

    generated_at: datetime
    run_id: str
    run_started: float | None
    batch_runs: Sequence[BatchRun] = ()
    checks: Sequence[CheckLine] = ()


def image_sources(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(generator, model, images) for the stored images, most images first: what made them, from the
    manifest's own rows rather than from whichever generator is configured now."""
    models = Counter(str(r.get("model") or "unknown") for r in rows)
    return [(generator_label(m), m, n) for m, n in models.most_common()]


def generator_label(model: str | None) -> str:
    # every version of the offline card ("offline-card-v1", ...) is the offline renderer's
    if model == OFFLINE_MODEL or str(model or "").startswith("offline-card-"):
        return "offline renderer"
    return "unknown generator" if not model or model == "unknown" else "OpenAI Images API"


def _utc(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "?"


def duration_text(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _duration_line(batch_runs: Sequence[BatchRun]) -> str:
    timed = [r for r in {r.run_id: r for r in batch_runs}.values() if r.started and r.ended]
    if not batch_runs:
        return "no batch has run yet"
    if not timed:
        return "the runs that made the batches are not in this Dagster instance"
    first, last = min(r.started for r in timed), max(r.ended for r in timed)
    busy = sum(r.ended - r.started for r in timed)
    missing = len({r.run_id for r in batch_runs}) - len(timed)
    return (
        f"the batches' latest runs ({len(timed):,}) went from {_utc(first)} to {_utc(last)}: "
        f"{duration_text(last - first)} from first start to last end, {duration_text(busy)} of run time"
        + (f"; {missing:,} more runs are not in this instance" if missing else "")
    )


def retry_policy(batch_runs: Sequence[BatchRun]) -> str:
    """The retry policy with the call limit the batches really ran with."""
    limits = sorted({r.max_calls_per_product for r in batch_runs if r.max_calls_per_product})
    if not limits:
        limit = "the per-product call limit (max_calls_per_product) is unknown: the batches' runs are not in this instance"
    elif len(limits) == 1:
        limit = f"at most {limits[0]} calls per product per run (max_calls_per_product)"
    else:
        limit = (
            f"at most {limits[0]}–{limits[-1]} calls per product per run, by batch (max_calls_per_product)"
        )
    return (
        "rate limits wait for retry-after (shared pause); transient errors retry with exponential backoff and "
        f"jitter; content-policy refusals are refined once, then fall back; {limit}"
    )


def build_report(
    *,
    index: Mapping[str, Any],
    manifest_rows: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Any]],
    products: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    failed_partitions: Sequence[str],
    run: ReportRun,
    locations: Mapping[str, str],
    reviews: Mapping[str, Mapping[str, Any]] | None = None,
    calls: CallSummary | None = None,
) -> str:
    """The report in the catalog owners' structure. `settings` describe the configured generator (what the
    next runs use); what made the stored images comes from the manifest's rows and the batches' runs.
    `locations` say where a reader finds the manifest, linked catalog and contact sheet."""
    total = int(index.get("product_count", 0))
    quarantined = index.get("quarantined", [])
    sources = Counter(r.get("source") for r in manifest_rows)
    done = len(manifest_rows)
    failed = [o for o in outcomes.values() if o.get("outcome") == "failed"]
    missing = total - done - len(failed)
    size_total = sum(int(r.get("bytes") or 0) for r in manifest_rows)
    offline_batches = {b.partition for b in run.batch_runs if b.model == OFFLINE_MODEL}
    # API calls come from the call record (every call as it happened, killed runs' included); batches with
    # no recorded call (offline renders, the Batch API, stores older than the record) from their outcomes
    record = calls or CallSummary()
    recorded = {c.partition for c in record.calls}
    unrecorded = [o for o in outcomes.values() if o.get("partition") not in recorded]
    calls_by_kind: Counter[str] = Counter({"api": record.total})
    for o in unrecorded:
        kind = "renders" if o.get("partition") in offline_batches else "api"
        calls_by_kind[kind] += calls_total(o)
    n_calls = sum(calls_by_kind.values())
    cost = record.cost_usd + sum(float(o.get("cost_usd") or 0.0) for o in unrecorded)
    batch_partitions = {b.partition for b in run.batch_runs if b.generation_mode == "batch"}
    batch_cost = sum(
        float(o.get("cost_usd") or 0.0) for o in unrecorded if o.get("partition") in batch_partitions
    )
    call_errors = Counter(e for o in unrecorded for e in errors_total(o)) + record.errors
    paid_twice = record.paid_twice()
    final_errors = Counter(o.get("error_class") or "unknown" for o in failed)
    made_by = image_sources(manifest_rows)

    lines = ["# Product image generation — status report", ""]
    lines += [
        f"- **Date**: {run.generated_at.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- **Run**: `{md_code(run.run_id)}` (generation_report)"
        + (f", started {_utc(run.run_started)}" if run.run_started else ""),
        f"- **Duration**: {_duration_line(run.batch_runs)}",
        "",
    ]
    lines += ["## Overview", ""]
    made_text = (
        "; ".join(f"{n:,} by the {label} (`{md_code(model)}`)" for label, model, n in made_by)
        if made_by
        else "none yet"
    )
    lines.append(
        f"Images for the catalog `{md_code(index.get('source', '?'))}` ({total:,} valid products in "
        f"{len(index.get('partitions', []))} batches), stored in `{md_code(settings.get('store', '?'))}` as JPEG "
        f"with 300 px thumbnails. Stored images: {made_text}."
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
        (
            "Image API calls",
            f"{calls_by_kind['api']:,}"
            + (f" ({calls_by_kind['api'] / done:.2f} per image)" if done and calls_by_kind["api"] else ""),
        ),
        ("Offline renders (no API call)", f"{calls_by_kind['renders']:,}"),
        ("Generation mode", _modes_line(run.batch_runs)),
        ("Estimated cost", _cost_line(cost, batch_cost)),
    ]
    if record.total:
        died, going = record.unanswered(over=True), record.unanswered(over=False)
        after_calls = next(i for i, (label, _) in enumerate(status) if label == "Image API calls") + 1
        status[after_calls:after_calls] = [  # after the API calls they account for
            (
                "Calls in the call record",
                f"{record.total:,}: {record.answered:,} answered, {died:,} with no answer (in flight when "
                f"their run ended)" + (f", {going:,} in flight in runs still going" if going else ""),
            ),
            (
                "Paid calls (an image came back, or no answer did: the API may have made it)",
                f"{record.paid:,}",
            ),
            ("Products paid more than once", f"{len(paid_twice):,}"),
        ]
    status += review_status_lines(manifest_rows, reviews or {})
    status += other_call_lines(record)
    lines += [f"- **{k}**: {v}" for k, v in status]
    lines += ["", "Sizes are decimal: 1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes.", ""]
    lines.append("Main-image figures, measured from the pixels (marketplace guidance):")
    photos, cards = image_figures.photos_and_cards(manifest_rows)
    lines += [""] + [f"- {line}" for line in image_figures.summarize(photos).lines(cards=len(cards))]
    lines += ["", delivery_line(manifest_rows), ""]
    lines.append("Products by category:")
    lines += ["", category_table(products, manifest_rows, outcomes)]
    lines += ["", "## Implementation Details", ""]
    details = [
        ("Images in the store made by", made_text),
        (
            "Configured generator (next runs)",
            f"{settings.get('generator')} (`{md_code(settings.get('model'))}`)",
        ),
        ("Size / quality", f"{settings.get('size')} / {settings.get('quality')}"),
        ("Generation mode (next runs)", settings.get("generation_mode") or "sync"),
        ("Concurrency per batch", settings.get("concurrency")),
        ("Rate limit", settings.get("rate_limit") or "none (the offline renderer has no limit)"),
        ("Retry policy", retry_policy(run.batch_runs)),
        ("Most calls one product took", _most_calls(outcomes)),
        ("Storage target", settings.get("store")),
        ("Manifest", locations.get("manifest")),
        ("Linked catalog", locations.get("linked")),
    ]
    lines += [f"- **{k}**: {v if k in _PRE_ESCAPED else md_escape(v)}" for k, v in details]
    lines += ["", "## Monitoring and Reporting", ""]
    lines += [
        "- Run history, logs and per-batch metadata: the Dagster UI (`dagster dev`), asset `product_images` "
        "(one partition per batch; its metadata lists each batch's failures).",
        "- Asset checks: " + _checks_by_asset(run.checks) + ".",
        "- This report: asset `generation_report`; the manifest: asset `image_manifest`.",
        "",
        "Latest result of each check:",
        "",
        md_table(
            ["check", "on", "result", "severity", "when", "run", "details"],
            [
                [
                    c.name,
                    c.asset,
                    c.status,
                    c.severity or "",
                    _utc(c.when) if c.when else "",
                    (c.run_id or "")[:8],
                    (c.description or "")[:160],
                ]
                for c in run.checks
            ],
        )
        if run.checks
        else "No asset checks are defined.",
    ]
    lines += ["", "## Error Analysis", ""]
    lines += error_analysis(calls_by_kind, call_errors)
    lines += rate_limit_lines(record)
    if paid_twice:
        lines += [
            "",
            f"Products paid more than once for the same prompt ({len(paid_twice):,}; in the cost):",
            "",
        ]
        lines.append(
            md_table(
                ["product", "batch", "paid calls", "why the earlier image was lost"],
                [[p.product, p.partition or "", p.paid_calls, "; ".join(p.reasons)] for p in paid_twice[:30]],
            )
        )
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
        lines += ["", f"Quarantined catalog rows by reason ({len(quarantined):,} rows):", ""]
        lines.append(md_table(["reason", "rows"], reasons.most_common(10)))
        lines += ["", f"Quarantined rows (first {min(len(quarantined), 20)}):", ""]
        lines.append(
            md_table(
                ["row", "product id", "reason"],
                [[q.get("row"), q.get("product_id"), q.get("reason")] for q in quarantined[:20]],
            )
        )
    lines += ["", "## Sample Images", ""]
    samples = sample_rows(manifest_rows)
    if samples:
        by_id = {p.get("id"): p for p in products}
        lines.append(
            md_table(
                ["product", "name", "source", "key"],
                [
                    [
                        r["product_id"],
                        (by_id.get(r["product_id"]) or {}).get("name", ""),
                        source_label(r),
                        r["key"],
                    ]
                    for r in samples
                ],
            )
        )
    if locations.get("contact_sheet"):
        lines += ["", f"Contact sheet: `{md_code(locations['contact_sheet'])}`"]
    if locations.get("review_gallery"):
        lines += ["", f"Review gallery (rejected first): `{md_code(locations['review_gallery'])}`"]
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
            calls=n_calls,
            quarantined=quarantined,
            record=record,
            made_by=made_by,
            checks=run.checks,
        )
    ]
    return "\n".join(lines) + "\n"


def review_status_lines(
    manifest_rows: Sequence[Mapping[str, Any]], reviews: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """Status lines of the image review: verdicts on the stored images, retakes, and what the paid reviews
    of the current images cost (`reviews`: the stored review rows by product id)."""
    if not manifest_rows:
        return []
    statuses = Counter(str(r.get("review_status") or "unreviewed") for r in manifest_rows)
    current = [
        reviews[r["product_id"]]
        for r in manifest_rows
        if r["product_id"] in reviews and reviews[r["product_id"]].get("image_sha256") == r.get("sha256")
    ]
    paid = [row for row in current if row.get("calls")]
    cost = sum(float(row.get("cost_usd") or 0.0) for row in current)
    reviewers = sorted({str((row.get("review") or {}).get("reviewer") or "") for row in current} - {""})
    verdicts = ", ".join(f"{n:,} {status.replace('_', ' ')}" for status, n in statuses.most_common())
    per_image = f" (${cost / len(paid):.5f} per paid review)" if paid else ""
    return [
        ("Image reviews", f"{verdicts}; by {', '.join(reviewers) or 'no reviewer yet'}"),
        ("Retaken after a review rejection", f"{sum(1 for r in manifest_rows if r.get('retakes')):,}"),
        ("Review calls (current images)", f"{sum(int(row.get('calls') or 0) for row in current):,}"),
        ("Estimated review cost (current images)", f"${cost:,.4f}{per_image}"),
    ]


def other_call_lines(record: CallSummary) -> list[tuple[str, str]]:
    """Status lines of the review and embeddings calls in the call record: every run's, failed and killed
    ones too (the review lines above count only the calls behind the current images' reviews)."""
    labels = {
        REVIEW: "Review calls, every run (call record)",
        EMBEDDINGS: "Embeddings requests, every run (call record)",
    }
    lines = []
    for kind in record.other_kinds():
        text = f"{kind.calls:,}"
        if kind.errors:
            classes = ", ".join(f"{cls} {n:,}" for cls, n in kind.errors.most_common())
            text += f", {kind.failed:,} failed ({classes})"
        else:
            text += ", none failed"
        if kind.unanswered:
            text += f", {kind.unanswered:,} with no answer"
        lines.append((labels.get(kind.kind, f"{kind.kind} calls, every run (call record)"), text))
    return lines


# detail values that are markdown already (code spans built above)
def _modes_line(batch_runs: Sequence[BatchRun]) -> str:
    """How the batches' last runs generated: e.g. `batch (OpenAI Batch API) for 5 of 5 batches`."""
    modes = Counter(b.generation_mode for b in batch_runs)
    if not modes:
        return "none yet"
    names = {"sync": "sync (Images API calls)", "batch": "batch (OpenAI Batch API)"}
    total = sum(modes.values())
    return "; ".join(f"{names.get(m, m)} for {n:,} of {total:,} batches" for m, n in modes.most_common())


def _cost_line(cost: float, batch_cost: float) -> str:
    """The estimate, and for images made through the Batch API what they would have cost synchronously."""
    from catalog_assets.costs import batch_discount

    discount = batch_discount()
    if batch_cost <= 0 or not 0 < discount < 1:
        return f"${cost:,.2f}"
    sync = cost - batch_cost + batch_cost / discount
    return f"${cost:,.2f} (Batch API prices, {discount:g} × the synchronous estimate of ${sync:,.2f})"


_PRE_ESCAPED = frozenset({"Images in the store made by", "Configured generator (next runs)"})


def category_table(
    products: Sequence[Mapping[str, Any]],
    manifest_rows: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, Mapping[str, Any]],
) -> str:
    """Products, images, fallback cards and failures per catalog category."""
    imaged = {r["product_id"]: r.get("source") for r in manifest_rows}
    counts: dict[str, Counter[str]] = {}
    for product in products:
        pid = product.get("id")
        row = counts.setdefault(str(product.get("category") or "(none)"), Counter())
        row["products"] += 1
        if pid in imaged:
            row["images"] += 1
            row["fallback"] += imaged[pid] == "fallback"
        elif (outcomes.get(pid) or {}).get("outcome") == "failed":
            row["failed"] += 1
    return md_table(
        ["category", "products", "images", "fallback", "failed"],
        [
            [name, c["products"], c["images"], c["fallback"], c["failed"]]
            for name, c in sorted(counts.items(), key=lambda item: (-item[1]["products"], item[0]))
        ],
    )


def error_analysis(calls_by_kind: Mapping[str, int], call_errors: Mapping[str, int]) -> list[str]:
    failures = sum(call_errors.values())
    api = calls_by_kind.get("api", 0)
    if not api:
        text = f"No image API calls: the offline renderer drew every image ({calls_by_kind.get('renders', 0):,} renders)"
        if not failures:
            return [text + ", and no render failed."]
        failed_text = "1 render" if failures == 1 else f"{failures:,} renders"
        return [text + f"; {failed_text} failed:", "", _error_table(call_errors, "renders")]
    if not failures:
        return [f"No API call failed ({api:,} calls)."]
    return [
        f"Failed calls by class ({failures:,} of {sum(calls_by_kind.values()):,} calls; retried, refined or fell "
        "back as their class asks):",
        "",
        _error_table(call_errors, "calls"),
    ]


def _error_table(call_errors: Mapping[str, int], unit: str) -> str:
    n = sum(call_errors.values())
    return md_table(
        ["class", unit, "share of failures"],
        [[ERROR_LABELS.get(k, k), v, pct(v, n)] for k, v in Counter(call_errors).most_common()],
    )


def _most_calls(outcomes: Mapping[str, Mapping[str, Any]]) -> str:
    if not outcomes:
        return "n/a"
    pid, rec = max(outcomes.items(), key=lambda item: calls_total(item[1]))
    n = calls_total(rec)
    return f"{n} ({pid})" if n > 1 else f"{n}"


def _checks_by_asset(checks: Sequence[CheckLine]) -> str:
    by_asset: dict[str, list[str]] = {}
    for c in checks:
        by_asset.setdefault(c.asset, []).append(c.name)
    return (
        "; ".join(f"on `{a}`: {', '.join(f'`{n}`' for n in names)}" for a, names in by_asset.items())
        or "none"
    )


def rate_limit_lines(record: CallSummary) -> list[str]:
    """What the recorded 429s were: the account's window (its limit reached) or isolated refusals."""
    judged = record.rate_limited
    if not judged:
        return []
    parts = [
        f"{judged['window'] + judged['coalesced']:,} of the exhausted window ({pct(record.window_429s, record.total)} "
        "of calls)",
        f"{judged['isolated']:,} isolated (the window had room: only that product waited)",
    ]
    if judged["unjudged"]:
        parts.append(f"{judged['unjudged']:,} not judged")
    return ["", "Rate-limited calls (429): " + "; ".join(parts) + "."]


def recommendations(
    *,
    total,
    done,
    failed,
    failed_partitions,
    sources,
    call_errors,
    calls,
    quarantined,
    made_by,
    checks=(),
    record: CallSummary | None = None,
) -> list[str]:
    recs = []
    for c in checks:
        if c.status in ("failed", "did not complete"):
            recs.append(
                f"Check `{c.name}` on `{c.asset}` {c.status} (run {(c.run_id or '?')[:8]}): "
                f"{md_escape((c.description or 'see its result in the Dagster UI')[:200])}; fix it and rerun "
                "`catalog-images check`."
            )
    never_run = [c.name for c in checks if c.status == "not run yet"]
    if never_run:
        recs.append(
            f"{len(never_run)} checks have no result yet ({', '.join(never_run)}): run `catalog-images check`."
        )
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
    record = record or CallSummary()
    # Only 429s of the exhausted window say the configured rate is above the account's; isolated ones do not.
    if record.total and record.window_429s / record.total > 0.01:
        recs.append(
            f"{pct(record.window_429s, record.total)} of calls hit the account's exhausted rate window: lower "
            "`images_per_minute` to the account's real limit (or raise the limit with OpenAI)."
        )
    died = [
        p for p in record.paid_twice() if any("in flight when" in r or "never stored" in r for r in p.reasons)
    ]
    if died:
        recs.append(
            f"{len(died)} products were paid twice because a run ended with their calls in flight or their "
            "images unstored: stop runs with Ctrl-C or SIGTERM (calls in flight finish and are stored), not kill -9."
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
    if made_by and all(model == OFFLINE_MODEL for _, model, _ in made_by) and not sources.get("fallback"):
        recs.append(
            "Every image comes from the offline renderer: set OPENAI_API_KEY for photographic images, after a rehearsal against the stand-in API (README)."
        )
    if not recs:
        recs.append(f"All {total:,} products have images and every check passed: nothing to do.")
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


def card_label(row: Mapping[str, Any]) -> str:
    """What a stored image is when it is no photo of the goods: a fallback card (the API refused the product)
    or an offline card (the offline renderer is the generator); empty for an API image."""
    if row.get("source") == "fallback":
        return "fallback card"
    return "offline card" if generator_label(row.get("model")) == "offline renderer" else ""


def source_label(row: Mapping[str, Any]) -> str:
    label = card_label(row)
    source = str(row.get("source") or "")
    return f"**{label}**" if label == "fallback card" else f"{source} ({label})" if label else source


def delivery_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """Delivery variants in the store: formats, widths, and mean bytes per format and width."""
    sizes: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        for v in r.get("variants") or []:
            sizes.setdefault((str(v.get("format")), int(v.get("width") or 0)), []).append(
                int(v.get("bytes") or 0)
            )
    if not sizes:
        return "Delivery variants: none (only the JPEG and its thumbnail)."
    parts = [
        f"{fmt.upper()} {width} px {human_bytes(sum(b) / len(b))} mean ({len(b):,})"
        for (fmt, width), b in sorted(sizes.items())
    ]
    return "Delivery variants (srcset in the linked catalog): " + "; ".join(parts) + "."


def contact_sheet(
    thumbnails: Sequence[tuple[str, bytes]],
    columns: int = 4,
    cell: int = 240,
    labels: Mapping[str, str] | None = None,
) -> bytes:
    """A PNG grid of thumbnails with their product ids, and under a card's id what it is (`labels`, e.g.
    "fallback card"), so nobody takes a placeholder for a photo."""
    labels = labels or {}
    rows = max(1, -(-len(thumbnails) // columns))
    label = 44 if labels else 24
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label)), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    label_font = font(16)
    for i, (pid, data) in enumerate(thumbnails):
        x, y = (i % columns) * cell, (i // columns) * (cell + label)
        img = decode_image(data).convert("RGB")
        img.thumbnail((cell - 12, cell - 12))
        sheet.paste(img, (x + (cell - img.width) // 2, y + 6))
        draw.text((x + cell // 2, y + cell), pid, font=label_font, fill=(40, 40, 40), anchor="ma")
        if labels.get(pid):
            fallback = labels[pid] == "fallback card"
            draw.text(
                (x + cell // 2, y + cell + 20),
                labels[pid],
                font=label_font,
                fill=(170, 30, 30) if fallback else (90, 90, 90),
                anchor="ma",
            )
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
