"""Rate checks: the share of catalog rows quarantined (on product_catalog), and the failure, fallback and
content-policy rates over the batches' outcome records (on image_manifest, not blocking).

Failure rates are computed over the outcome records (`state/outcomes/<partition>.json`), in checks on
`image_manifest`, not as partitioned checks of `product_images`: a `product_images` partition fails as soon as
one product failed, and Dagster skips a check whose asset step failed (seen in 1.13, where partitioned checks
are also still a preview). A per-partition check would therefore only ever run on batches with no failure and
report 0 %. The outcome records keep every batch's last result, so the checks on `image_manifest` see the
failed batches too, and they run in every publish run.
"""

from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from catalog_assets import state
from catalog_assets.checks.names import (
    BATCH_FAILURE_RATE,
    CONTENT_POLICY_RATE,
    FALLBACK_RATE,
    IMAGE_MANIFEST,
    OVERALL_FAILURE_RATE,
    PRODUCT_CATALOG,
    QUARANTINE_RATE,
)
from catalog_assets.checks.results import not_judged, pct, rate, rate_result, selected, shown, table
from catalog_assets.checks.thresholds import CheckThresholds, ThresholdError, threshold_metadata
from catalog_assets.errors import ErrorClass
from catalog_assets.manifest import collect_outcomes
from catalog_assets.outcomes import errors_total
from catalog_assets.resources.store import ImageStoreResource

# -- product_catalog ------------------------------------------------------------------------------------


@asset_check(
    asset=PRODUCT_CATALOG,
    name=QUARANTINE_RATE,
    description="Share of catalog rows rejected by validation (quarantined rows / rows read). Fails with WARN "
    "above CATALOG_CHECK_MAX_QUARANTINE_RATE (default 0.05): many rejected rows usually mean a wrong file or "
    "column mapping rather than bad products.",
)
def quarantine_rate(store: ImageStoreResource) -> AssetCheckResult:
    try:
        thresholds = CheckThresholds.from_env()
    except ThresholdError as exc:
        return not_judged(None, exc)
    index = state.read_index(store.get_client())
    if not index:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description="no catalog index in the store: product_catalog has not been materialized here",
        )
    quarantined = list(index.get("quarantined") or [])
    reasons = Counter(str(q.get("reason", "")).split(" (")[0] for q in quarantined)
    return rate_result(
        check_name=None,
        severity=AssetCheckSeverity.WARN,
        rate_key="quarantine_rate",
        count=("quarantined", len(quarantined)),
        total=("rows_read", int(index.get("rows_read") or 0)),
        phrase="catalog rows quarantined",
        limit_field="max_quarantine_rate",
        limit=thresholds.max_quarantine_rate,
        extra={"reasons": table(["reason", "rows"], reasons.most_common())},
        explanation="quarantined rows / rows read; quarantined rows get no image",
    )


# -- outcomes of the batches (on image_manifest, non-blocking) ---------------------------------------------

_OUTCOME_SPECS = [
    AssetCheckSpec(
        BATCH_FAILURE_RATE,
        asset=IMAGE_MANIFEST,
        description="Worst batch's share of products whose last outcome is `failed`, from the batches' outcome "
        "records. Fails with ERROR when any batch is above CATALOG_CHECK_MAX_BATCH_FAILURE_RATE (default 0.10). "
        "Not blocking: failed products have no image and get no URL, so the linked catalog stays correct.",
    ),
    AssetCheckSpec(
        OVERALL_FAILURE_RATE,
        asset=IMAGE_MANIFEST,
        description="Share of all products whose last outcome is `failed`. Fails with ERROR above "
        "CATALOG_CHECK_MAX_FAILURE_RATE (default 0.02). Not blocking, like the batch failure rate.",
    ),
    AssetCheckSpec(
        FALLBACK_RATE,
        asset=IMAGE_MANIFEST,
        description="Share of stored images that are offline fallback cards rather than generated pictures. "
        "Fails with WARN above CATALOG_CHECK_MAX_FALLBACK_RATE (default 0.05).",
    ),
    AssetCheckSpec(
        CONTENT_POLICY_RATE,
        asset=IMAGE_MANIFEST,
        description="Share of products refused at least once for content policy (a `content_policy` error in "
        "their outcome's errors_total, or an image made from a refined prompt). Fails with WARN above "
        "CATALOG_CHECK_MAX_CONTENT_POLICY_RATE (default 0.10): prompts that trip moderation need rewording.",
    ),
]


@dataclass(frozen=True)
class OutcomeFigures:
    """The rates of the outcome checks, from the batches' last outcome records."""

    by_batch: dict[str, Counter]  # partition -> Counter of outcomes
    failed_classes: dict[str, Counter]  # partition -> Counter of error classes of failed products
    batches_without_outcomes: list[str]
    products: int
    failed: int
    with_image: int
    fallback: int
    content_policy: int
    content_policy_ids: list[str]


def outcome_figures(index: Mapping[str, Any], outcomes: Mapping[str, Mapping[str, Any]]) -> OutcomeFigures:
    """Counts behind the failure, fallback and content-policy rates (pure: tested without Dagster)."""
    by_batch: dict[str, Counter] = {p: Counter() for p in index.get("partitions", [])}
    failed_classes: dict[str, Counter] = defaultdict(Counter)
    fallback = with_image = 0
    content_policy_ids = []
    for pid, rec in outcomes.items():
        outcome = rec.get("outcome")
        by_batch.setdefault(rec["partition"], Counter())[outcome] += 1
        if outcome == "failed":
            failed_classes[rec["partition"]][rec.get("error_class") or "unknown"] += 1
        elif rec.get("key"):
            with_image += 1
            fallback += rec.get("source") == "fallback"
        errors = errors_total(rec)
        if ErrorClass.CONTENT_POLICY.value in errors or rec.get("source") == "refined":
            content_policy_ids.append(pid)
    return OutcomeFigures(
        by_batch={p: c for p, c in by_batch.items() if c},
        failed_classes=dict(failed_classes),
        batches_without_outcomes=sorted(p for p, c in by_batch.items() if not c),
        products=len(outcomes),
        failed=sum(c["failed"] for c in by_batch.values()),
        with_image=with_image,
        fallback=fallback,
        content_policy=len(content_policy_ids),
        content_policy_ids=sorted(content_policy_ids),
    )


@multi_asset_check(
    specs=_OUTCOME_SPECS,
    can_subset=True,
    description="Failure, fallback and content-policy rates over the batches' outcome records.",
)
def generation_outcome_checks(
    context: AssetCheckExecutionContext, store: ImageStoreResource
) -> Iterator[AssetCheckResult]:
    try:
        thresholds = CheckThresholds.from_env()
    except ThresholdError as exc:
        yield from selected(context, IMAGE_MANIFEST, [not_judged(s.name, exc) for s in _OUTCOME_SPECS])
        return
    client = store.get_client()
    index = state.read_index(client)
    figures = outcome_figures(index, collect_outcomes(client, index.get("partitions", [])))
    not_run = {
        "batches_without_outcomes": len(figures.batches_without_outcomes),
        "batches_not_yet_run": MetadataValue.text(", ".join(figures.batches_without_outcomes[:20]) or "none"),
    }
    results = [
        _batch_failure_result(figures, thresholds.max_batch_failure_rate, not_run),
        rate_result(
            check_name=OVERALL_FAILURE_RATE,
            severity=AssetCheckSeverity.ERROR,
            rate_key="failure_rate",
            count=("failed", figures.failed),
            total=("products", figures.products),
            phrase="products failed",
            limit_field="max_failure_rate",
            limit=thresholds.max_failure_rate,
            extra=not_run,
            explanation="products whose last outcome is failed / products with an outcome record",
        ),
        rate_result(
            check_name=FALLBACK_RATE,
            severity=AssetCheckSeverity.WARN,
            rate_key="fallback_rate",
            count=("fallback_images", figures.fallback),
            total=("stored_images", figures.with_image),
            phrase="stored images are fallback cards",
            limit_field="max_fallback_rate",
            limit=thresholds.max_fallback_rate,
            explanation="images whose source is fallback (offline card after repeated failures or a "
            "refused refined prompt) / products with a stored image",
        ),
        rate_result(
            check_name=CONTENT_POLICY_RATE,
            severity=AssetCheckSeverity.WARN,
            rate_key="content_policy_rate",
            count=("refused_products", figures.content_policy),
            total=("products", figures.products),
            phrase="products were refused for content policy at least once",
            limit_field="max_content_policy_rate",
            limit=thresholds.max_content_policy_rate,
            extra={"sample": MetadataValue.text(", ".join(figures.content_policy_ids[:20]) or "none")},
            explanation="products with a content_policy error in errors_total (over every run of the "
            "same prompt) or whose image came from a refined prompt / products with an outcome record",
        ),
    ]
    yield from selected(context, IMAGE_MANIFEST, results)


def _batch_failure_result(
    figures: OutcomeFigures, limit: float, not_run: Mapping[str, Any]
) -> AssetCheckResult:
    """The worst batch against the limit, with every batch over it listed by its error classes."""
    rates = {p: rate(c["failed"], sum(c.values())) for p, c in figures.by_batch.items()}
    over = sorted((p for p, r in rates.items() if r > limit), key=lambda p: (-rates[p], p))
    worst = max((p for p in rates if rates[p]), key=lambda p: (rates[p], p), default=None)
    return AssetCheckResult(
        check_name=BATCH_FAILURE_RATE,
        passed=not over,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"{len(over)} of {len(rates)} batches have more than {pct(limit)} failed products; worst "
            f"{worst} at {pct(rates[worst])}"
            if over
            else f"every batch at most {pct(limit)} failed"
            + (f" (worst {worst} at {pct(rates[worst])})" if worst else "")
        ),
        metadata={
            "worst_batch_failure_rate": shown(rates[worst]) if worst else 0.0,
            "worst_batch": MetadataValue.text(worst or "none"),
            "batches_over_threshold": len(over),
            "batches_checked": len(rates),
            **threshold_metadata("max_batch_failure_rate", limit),
            "failing_batches": table(
                ["batch", "failed", "products", "rate", "error classes"],
                [
                    [
                        p,
                        figures.by_batch[p]["failed"],
                        sum(figures.by_batch[p].values()),
                        pct(rates[p]),
                        ", ".join(f"{k} {v}" for k, v in figures.failed_classes.get(p, {}).items()),
                    ]
                    for p in over
                ],
            ),
            **not_run,
            "explanation": "per batch: products whose last outcome is failed / products with an outcome; "
            "rerun a failing batch (failed_batches_retry_schedule does it nightly) to redo only its failures",
        },
    )
