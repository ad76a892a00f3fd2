"""The review's verdicts on the published images: the share of reviewed stored images that the reviewer or a
person rejected (on image_manifest, WARN, not blocking: a rejected image is retaken by the next run)."""

from collections import Counter

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from catalog_assets import state
from catalog_assets.checks.names import IMAGE_MANIFEST, REVIEW_REJECTION_RATE
from catalog_assets.checks.results import not_judged, rate_result, table
from catalog_assets.checks.thresholds import CheckThresholds, ThresholdError
from catalog_assets.resources.store import ImageStoreResource

REJECTED = ("rejected", "rejected_by_person", "rejected_kept")


@asset_check(
    asset=IMAGE_MANIFEST,
    name=REVIEW_REJECTION_RATE,
    description="Share of reviewed stored images whose review rejects them (not the product, or an issue "
    "such as a person, garbled text, a second product), or that a person rejected. Fails with WARN above "
    "CATALOG_CHECK_MAX_REVIEW_REJECTION_RATE (default 0.10): the next product_images run retakes them, but "
    "many rejections usually mean a prompt or model problem worth a look.",
)
def review_rejection_rate(store: ImageStoreResource) -> AssetCheckResult:
    try:
        thresholds = CheckThresholds.from_env()
    except ThresholdError as exc:
        return not_judged(None, exc)
    manifest = store.get_client().get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.WARN, description="no manifest in the store yet"
        )
    rows = manifest.get("rows") or []
    statuses = Counter(str(r.get("review_status") or "unreviewed") for r in rows)
    rejected = [r for r in rows if r.get("review_status") in REJECTED]
    return rate_result(
        check_name=None,
        severity=AssetCheckSeverity.WARN,
        rate_key="review_rejection_rate",
        count=("rejected", len(rejected)),
        total=("reviewed", len(rows) - statuses.get("unreviewed", 0)),
        phrase="reviewed images rejected",
        limit_field="max_review_rejection_rate",
        limit=thresholds.max_review_rejection_rate,
        extra={
            "statuses": table(["status", "images"], statuses.most_common()),
            "rejected_images": table(
                ["product", "status", "issues", "retakes"],
                [
                    [
                        r["product_id"],
                        r["review_status"],
                        ", ".join((r.get("review") or {}).get("issues") or []) or "—",
                        r.get("retakes", 0),
                    ]
                    for r in rejected
                ],
            ),
        },
        explanation="images with a rejecting review (or a person's rejection) / images with a review of "
        "their current bytes; unreviewed images are not counted",
    )
