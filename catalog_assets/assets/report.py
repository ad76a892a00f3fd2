"""`generation_report`: the markdown status report and a contact sheet, in the store and in the UI."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from catalog_assets import state
from catalog_assets.assets.manifest import _index, image_manifest, linked_catalog
from catalog_assets.manifest import collect_outcomes
from catalog_assets.report import build_report, contact_sheet, sample_rows
from catalog_assets.resources.image_api import ImageGeneratorResource
from catalog_assets.resources.store import MARKDOWN, PNG, ImageStoreResource


@asset(group_name="publish", deps=[image_manifest, linked_catalog], kinds={"markdown"})
def generation_report(
    context: AssetExecutionContext, store: ImageStoreResource, image_generator: ImageGeneratorResource
) -> MaterializeResult:
    """The status report in the catalog owners' structure (overview, status, implementation, monitoring,
    error analysis, samples, recommendations) with real figures, plus a contact-sheet PNG."""
    client = store.get_client()
    generator = image_generator.get_client()
    index = _index(client)
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default={"rows": []})
    outcomes = collect_outcomes(client, index["partitions"])
    failed_partitions = sorted({o["partition"] for o in outcomes.values() if o.get("outcome") == "failed"})
    thumbs = []
    for row in sample_rows(manifest["rows"]):
        try:
            thumbs.append((row["product_id"], client.get(row["thumbnail_key"])))
        except KeyError:
            continue
    sheet_url = None
    if thumbs:
        client.put(state.CONTACT_SHEET_KEY, contact_sheet(thumbs), content_type=PNG)
        sheet_url = client.url(state.CONTACT_SHEET_KEY)
    paid = generator.paid
    settings = {
        "generator": "OpenAI Images API" if paid else "offline renderer",
        "model": generator.model,
        "size": generator.size,
        "quality": generator.quality,
        "concurrency": generator.concurrency,
        "rate_limit": f"{generator.images_per_minute:g} images/min, shared"
        if generator.images_per_minute
        else None,
        "retry_policy": "rate limits wait for retry-after (shared pause); transient errors retry with exponential "
        "backoff and jitter; content-policy refusals are refined once, then fall back; at most 4 calls per product",
        "store": client.location,
        "manifest_url": client.url(state.MANIFEST_LATEST_KEY),
        "linked_url": client.url(state.LINKED_JSON_KEY),
    }
    report = build_report(
        index=index,
        manifest_rows=manifest["rows"],
        outcomes=outcomes,
        settings=settings,
        failed_partitions=failed_partitions,
        contact_sheet_url=sheet_url,
    )
    client.put(state.REPORT_KEY, report.encode(), content_type=MARKDOWN)
    context.log.info(f"report written to {client.url(state.REPORT_KEY)}")
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(report),
            "report_url": MetadataValue.url(client.url(state.REPORT_KEY)),
            "contact_sheet_url": MetadataValue.url(sheet_url) if sheet_url else "none",
            "failed_partitions": MetadataValue.json(failed_partitions),
        }
    )
