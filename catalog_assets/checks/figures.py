"""Main-image figures on image_manifest, a warning only: how many stored images meet what marketplaces ask
of a product photo (pure white background, product filling ~85% of the frame, square, ≥ 1000 px), and which
products miss it and by what figure."""

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from catalog_assets import state
from catalog_assets.checks.names import IMAGE_FIGURES, IMAGE_MANIFEST
from catalog_assets.checks.results import not_judged, table
from catalog_assets.checks.thresholds import CheckThresholds, ThresholdError
from catalog_assets.image_figures import (
    MIN_BORDER_WHITE_SHARE,
    MIN_EDGE_PX,
    MIN_FILL_SHARE,
    TARGET_FILL_SHARE,
    photos_and_cards,
    summarize,
)
from catalog_assets.resources.store import ImageStoreResource


@asset_check(
    asset=IMAGE_MANIFEST,
    name=IMAGE_FIGURES,
    description=f"Every stored product photo (offline cards are placeholders, not judged) meets the marketplace guidance measured from its pixels: at least "
    f"{MIN_BORDER_WHITE_SHARE:.0%} of its border pixels pure white (RGB 255), the product's bounding box at "
    f"least {MIN_FILL_SHARE:.0%} of the frame (marketplaces ask about {TARGET_FILL_SHARE:.0%}), square and "
    f"at least {MIN_EDGE_PX} px. WARN, not blocking: the images still publish.",
)
def image_figures(store: ImageStoreResource) -> AssetCheckResult:
    try:
        CheckThresholds.from_env()  # a bad CATALOG_CHECK_* setting leaves every check unjudged alike
    except ThresholdError as exc:
        return not_judged(None, exc)
    manifest = store.get_client().get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description="no manifest in the store (manifests/latest.json): materialize image_manifest first",
        )
    rows, cards = photos_and_cards(manifest["rows"])  # the guidance is for product photos, not cards
    summary = summarize(rows)
    by_id = {r["product_id"]: r for r in rows}
    listed = [
        [
            pid,
            by_id[pid].get("source"),
            _pct(by_id[pid].get("border_white_share")),
            by_id[pid].get("border_min"),
            _pct(by_id[pid].get("fill_share")),
            f"{by_id[pid].get('width')}x{by_id[pid].get('height')}",
            "; ".join(missed),
        ]
        for pid, missed in sorted(summary.missing.items())
    ]
    return AssetCheckResult(
        passed=not summary.missing,
        severity=AssetCheckSeverity.WARN,
        description=f"{len(summary.missing)} of {summary.images} images miss the marketplace guidance "
        f"(white background {summary.white_background}, fill {summary.filled}, square and large "
        f"{summary.square_and_large} of {summary.measured} measured)"
        if summary.missing
        else f"all {summary.images} images meet the marketplace guidance"
        + (f" ({len(cards)} offline cards are placeholders and not judged)" if cards else ""),
        metadata={
            "images": summary.images,
            "offline_cards_not_judged": len(cards),
            "measured": summary.measured,
            "white_background": summary.white_background,
            "filled_frame": summary.filled,
            "square_and_large": summary.square_and_large,
            "missing_guidance": len(summary.missing),
            "mean_border_white_share": summary.mean_border_white_share
            if summary.mean_border_white_share is not None
            else -1.0,
            "mean_fill_share": summary.mean_fill_share if summary.mean_fill_share is not None else -1.0,
            "products": table(
                ["product", "source", "white border", "border min", "fill", "size", "misses"], listed
            ),
            "explanation": "border: the outer 1% ring of pixels; white share: border pixels exactly RGB 255; "
            "fill: bounding box of the pixels that differ from the border's median colour by more than 24 in "
            "a channel, over the frame area",
        },
    )


def _pct(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"
