"""`generation_report`: the markdown status report and a contact sheet, in the store and in the UI."""

import time
from datetime import UTC, datetime

from dagster import AssetExecutionContext, DagsterInstance, MaterializeResult, MetadataValue, asset

from catalog_assets import call_ledger, state
from catalog_assets.assets.images import ProductImagesConfig
from catalog_assets.assets.manifest import _index, image_manifest, linked_catalog, store_link
from catalog_assets.dagster_internals import latest_check_executions
from catalog_assets.manifest import attach_reviews, collect_outcomes, collect_reviews
from catalog_assets.report import (
    BatchRun,
    CheckLine,
    ReportRun,
    build_report,
    card_label,
    contact_sheet,
    sample_rows,
)
from catalog_assets.resources.coordination import CoordinationResource
from catalog_assets.resources.image_api import ImageGeneratorResource
from catalog_assets.resources.store import MARKDOWN, PNG, ImageStore, ImageStoreResource
from catalog_assets.review_gallery import HTML, gallery_base_href, review_gallery

_DEFAULT_MAX_CALLS = ProductImagesConfig.model_fields["max_calls_per_product"].default


@asset(group_name="publish", deps=[image_manifest, linked_catalog], kinds={"markdown"})
def generation_report(
    context: AssetExecutionContext,
    store: ImageStoreResource,
    image_generator: ImageGeneratorResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """The status report in the catalog owners' structure (overview, status, implementation, monitoring,
    error analysis, samples, recommendations) with real figures, plus a contact-sheet PNG."""
    client = store.get_client()
    index = _index(client)
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default={"rows": []})
    outcomes = collect_outcomes(client, index["partitions"])
    products = [p for key in index["partitions"] for p in state.read_batch_products(client, key) or []]
    failed_partitions = sorted({o["partition"] for o in outcomes.values() if o.get("outcome") == "failed"})
    sheet_written = _write_contact_sheet(client, manifest["rows"])
    reviews = collect_reviews(client, index["partitions"])
    gallery_written = _write_review_gallery(client, manifest["rows"], reviews, products)
    run_record = context.instance.get_run_record_by_id(context.run.run_id)
    calls = _call_record(context.instance, client, coordination)
    report = build_report(
        index=index,
        manifest_rows=manifest["rows"],
        outcomes=outcomes,
        products=products,
        settings=_configured_generator(image_generator, client),
        failed_partitions=failed_partitions,
        run=ReportRun(
            generated_at=datetime.now(UTC),
            run_id=context.run.run_id,
            run_started=run_record.start_time if run_record else None,
            batch_runs=_batch_runs(context.instance, client, index["partitions"]),
            checks=_check_lines(context.instance, context.run.run_id),
        ),
        locations={
            "manifest": client.locate(state.MANIFEST_LATEST_KEY),
            "linked": client.locate(state.LINKED_JSON_KEY),
            "contact_sheet": client.locate(state.CONTACT_SHEET_KEY) if sheet_written else "",
            "review_gallery": client.locate(state.REVIEW_GALLERY_KEY) if gallery_written else "",
        },
        reviews=reviews,
        calls=calls,
    )
    client.put(state.REPORT_KEY, report.encode(), content_type=MARKDOWN)
    context.log.info(f"report written to {client.locate(state.REPORT_KEY)}")
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(report),
            "report_url": store_link(client, state.REPORT_KEY),
            "contact_sheet_url": store_link(client, state.CONTACT_SHEET_KEY) if sheet_written else "none",
            "review_gallery_url": store_link(client, state.REVIEW_GALLERY_KEY) if gallery_written else "none",
            "failed_partitions": MetadataValue.json(failed_partitions),
            "api_calls_recorded": calls.total,
            "paid_calls": calls.paid,
            "products_paid_twice": MetadataValue.json([p.product for p in calls.paid_twice()]),
        }
    )


def _write_review_gallery(client: ImageStore, rows: list[dict], reviews: dict, products: list[dict]) -> bool:
    """The HTML review gallery beside the report; the manifest's rows get the reviews stored since it was
    written (linked_catalog reviews what image_reviews had not)."""
    if not rows:
        return False
    current = [dict(r) for r in rows]
    attach_reviews(current, reviews, state.read_rejections(client))
    rows[:] = current
    page = review_gallery(current, products, base_href=gallery_base_href(client))
    client.put(state.REVIEW_GALLERY_KEY, page.encode(), content_type=HTML)
    return True


#: a run this instance does not know, whose live call record got no entry for this long, is taken as over
_UNKNOWN_RUN_QUIET_S = 900.0


def _call_record(
    instance: DagsterInstance, client: ImageStore, coordination: CoordinationResource
) -> call_ledger.CallSummary:
    """Every recorded call: the store's records, plus the coordinator's live ones (copied into the store
    first when their run is over: it ended, or died and was marked failed)."""
    call_log = coordination.get_client().call_log()

    def is_over(run_id: str) -> bool:
        record = instance.get_run_record_by_id(run_id)
        if record is not None:
            return record.dagster_run.is_finished
        entries = call_log.read(run_id) if call_log is not None else []
        last = max((float(e.get("at") or 0.0) for e in entries), default=0.0)
        return time.time() - last > _UNKNOWN_RUN_QUIET_S

    records, over = call_ledger.collect(client, call_log, is_over)
    return call_ledger.summarize(records, over)


def _write_contact_sheet(client: ImageStore, rows: list[dict]) -> bool:
    thumbs = []
    for row in sample_rows(rows):
        try:
            thumbs.append((row["product_id"], client.get(row["thumbnail_key"])))
        except KeyError:
            continue
    if thumbs:
        labels = {r["product_id"]: card_label(r) for r in rows}
        client.put(state.CONTACT_SHEET_KEY, contact_sheet(thumbs, labels=labels), content_type=PNG)
    return bool(thumbs)


def _configured_generator(image_generator: ImageGeneratorResource, client: ImageStore) -> dict:
    """What the next runs would use; the report says so, and takes what made the stored images from rows."""
    generator = image_generator.get_client()
    return {
        "generator": "OpenAI Images API" if generator.paid else "offline renderer",
        "model": generator.model,
        "size": generator.size,
        "quality": generator.quality,
        "generation_mode": getattr(generator, "generation_mode", "sync"),
        "concurrency": generator.concurrency,
        "rate_limit": f"{generator.images_per_minute:g} images/min, shared"
        if generator.images_per_minute
        else None,
        "store": client.location,
    }


def _batch_runs(instance: DagsterInstance, client: ImageStore, partitions: list[str]) -> list[BatchRun]:
    """The run that wrote each batch's last outcomes, with its times and call limit from the instance."""
    runs: list[BatchRun] = []
    records: dict = {}
    for partition in partitions:
        header = state.read_outcomes_header(client, partition)
        run_id = header.get("run_id")
        if not run_id:
            continue
        if run_id not in records:
            records[run_id] = instance.get_run_record_by_id(run_id)
        record = records[run_id]
        timing = {}  # a run the instance no longer holds keeps only what its outcomes header says
        if record is not None:
            config = (record.dagster_run.run_config or {}).get("ops", {}).get("product_images", {})
            timing = {
                "started": record.start_time,
                "ended": record.end_time,
                "max_calls_per_product": int(
                    (config.get("config") or {}).get("max_calls_per_product") or _DEFAULT_MAX_CALLS
                ),
            }
        runs.append(
            BatchRun(
                partition,
                run_id,
                header.get("model"),
                generation_mode=str(header.get("generation_mode") or "sync"),
                **timing,
            )
        )
    return runs


def _check_lines(instance: DagsterInstance, run_id: str) -> list[CheckLine]:
    from catalog_assets.checks import ALL_CHECKS  # the checks import the publish assets

    keys = [key for checks in ALL_CHECKS for key in checks.check_keys]
    latest = latest_check_executions(instance, keys, running_run_id=run_id)
    shown = {"succeeded": "passed", "failed": "failed", "never run": "not run yet"}
    lines = []
    for key in keys:
        execution = latest[key]
        asset_name = key.asset_key.to_user_string()
        if execution.state == "never run":
            lines.append(CheckLine(key.name, asset_name, "not run yet"))
        else:
            lines.append(
                CheckLine(
                    key.name,
                    asset_name,
                    shown.get(execution.state, "did not complete"),
                    execution.severity,
                    execution.description,
                    execution.run_id,
                    execution.timestamp,
                )
            )
    return lines
