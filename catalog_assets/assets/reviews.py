"""`image_reviews`: each stored image of a batch checked against its product, once per fingerprint."""

from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from catalog_assets import call_ledger, state
from catalog_assets.assets.images import product_images
from catalog_assets.budget import ReviewBudget
from catalog_assets.errors import RunStopped
from catalog_assets.partitions import product_batches
from catalog_assets.resources.coordination import CoordinationResource, CoordinationUnavailable
from catalog_assets.resources.image_reviewer import ImageReviewerResource
from catalog_assets.resources.store import ImageStoreResource
from catalog_assets.reviewing import BatchReviewer, ReviewStats
from catalog_assets.util import md_table


class ReviewLimits(Config):
    """The budget of one step's paid reviews."""

    max_reviews: int | None = Field(
        default=None,
        ge=0,
        description="Paid reviews this step may make (None: no limit); the images past it stay unreviewed "
        "until the next run.",
    )
    max_review_cost_usd: float | None = Field(
        default=None,
        ge=0,
        description="Estimated USD (from the answers' token usage) this step may spend on reviews (None: no "
        "limit); no review starts once the reviews made cost this, those in flight may go past it.",
    )

    def budget(self) -> ReviewBudget:
        return ReviewBudget(self.max_reviews, self.max_review_cost_usd)


class ImageReviewsConfig(ReviewLimits):
    concurrency: int = Field(default=8, ge=1, le=64, description="Reviews made at once.")
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Attempts per review (rate limits, transient errors, bad answers).",
    )


@asset(
    group_name="images",
    partitions_def=product_batches,
    deps=[product_images],
    kinds={"python", "openai"},
)
def image_reviews(
    context: AssetExecutionContext,
    config: ImageReviewsConfig,
    image_reviewer: ImageReviewerResource,
    store: ImageStoreResource,
    coordination: CoordinationResource,
) -> MaterializeResult:
    """One review per stored image of the batch: shows_product, issues, visible_text, alt_text, caption,
    dominant_colours, who reviewed (a vision model, or the offline reviewer, which says so) and what it
    cost, in the store under `state/reviews/<batch>.json`. An image is reviewed once per fingerprint (its
    sha256 and the reviewer with its prompt version): a rerun makes no review call for an unchanged image.
    A rejected image is retaken by the next `product_images` run (see its `max_retakes`). Paid reviews share
    the coordinator's rate limiter and breaker (the reviewer's own bucket, apart from generation's) and stop
    at `max_reviews` / `max_review_cost_usd`; the images left fail the partition and the next run reviews
    them."""
    partition = context.partition_key
    client = store.get_client()
    reviewer = image_reviewer.get_client()
    coordinator = coordination.get_client()
    try:
        reviewer.check_config()
        coordinator.check()
    except (RunStopped, CoordinationUnavailable) as exc:
        raise Failure(description=str(getattr(exc, "message", exc))) from None
    products = state.read_batch_products(client, partition)
    if products is None:
        raise Failure(description=f"{partition} is unknown to the store {client.location}: materialize "
                      "product_catalog first")  # fmt: skip
    outcomes = state.read_outcomes(client, partition)
    previous = state.read_reviews(client, partition)
    with call_ledger.recording(coordinator.call_log(), client, context.run.run_id, partition) as recorder:
        batch = BatchReviewer(
            reviewer=reviewer,
            store=client,
            concurrency=config.concurrency,
            max_attempts=config.max_attempts,
            coordinator=coordinator,
            budget=config.budget(),
            recorder=recorder,
        )
        rows = batch.review(products, outcomes, previous)
    # failed reviews keep their earlier row (of an older image): it no longer matches, so it is redone later
    kept = {pid: row for pid, row in previous.items() if pid not in rows and pid in outcomes}
    state.write_reviews(client, partition, context.run.run_id, [*rows.values(), *kept.values()])
    stats = batch.stats
    rejected = sorted(pid for pid, row in rows.items() if not row["review"]["approved"])
    metadata = {
        "products": len(products),
        "reviewed_images": len(rows),
        **stats.metadata(),
        "reviewer": reviewer.model,
        "reviewer_offline": reviewer.offline,
        "rejection_rate": round(len(rejected) / len(rows), 4) if rows else 0.0,
        "rejected_products": MetadataValue.md(
            md_table(
                ["product", "issues", "caption"],
                [
                    [
                        pid,
                        ", ".join(rows[pid]["review"]["issues"]) or "not shown",
                        rows[pid]["review"]["caption"],
                    ]
                    for pid in rejected[:50]
                ],
            )
            if rejected
            else "none"
        ),
    }
    context.log.info(
        f"{partition}: {stats.reviewed} images reviewed by {reviewer.model} ({stats.calls} calls), "
        f"{stats.reused} unchanged, {len(rejected)} rejected, {len(stats.failed)} failed, "
        f"{len(stats.unreviewed)} left unreviewed"
    )
    if stats.failed or stats.unreviewed:
        raise Failure(description=_incomplete(partition, stats), metadata=metadata)
    return MaterializeResult(metadata=metadata)


def _incomplete(partition: str, stats: ReviewStats) -> str:
    """Why the partition's reviews are incomplete: the failed ones by class, those the budget left, the stop."""
    parts = []
    if stats.failed:
        classes = ", ".join(sorted({c for _, c, _ in stats.failed}))
        parts.append(f"{len(stats.failed)} reviews failed ({classes})")
    if stats.unreviewed:
        parts.append(f"{len(stats.unreviewed)} images left unreviewed")
    stopped = f": {stats.stopped}" if stats.stopped else ""
    return (
        f"{partition}: {' and '.join(parts)}{stopped}; the others are stored, a rerun reviews only the rest"
    )
