"""The one place that wires assets, checks, jobs, schedules and sensors to the environment's resources.

Which implementation each role gets is decided here from which settings exist (OPENAI_API_KEY,
CATALOG_S3_BUCKET, REDIS_URL); their values, secrets included, reach the resources through `EnvVar` and
are read when a run starts, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import (
    AssetSelection,
    ConfigurableResource,
    Definitions,
    EnvVar,
    Field,
    define_asset_job,
    multi_or_in_process_executor,
)

from catalog_assets import dagster_internals
from catalog_assets.assets.catalog import product_catalog
from catalog_assets.assets.images import product_images
from catalog_assets.assets.manifest import image_manifest, linked_catalog
from catalog_assets.assets.report import generation_report
from catalog_assets.assets.reviews import image_reviews
from catalog_assets.automation import catalog_publish_sensor
from catalog_assets.batch_sensor import build_batch_images_sensor
from catalog_assets.checks import ALL_CHECKS
from catalog_assets.resources.embedder import HashingTextEmbedderResource
from catalog_assets.resources.image_reviewer import OfflineImageReviewerResource
from catalog_assets.resources.offline import OfflineImageGeneratorResource
from catalog_assets.resources.store import LocalImageStoreResource
from catalog_assets.schedules import build_failed_batches_retry_schedule
from catalog_assets.sensors import catalog_batches_sensor

# Steps that start together each take a pool slot of their own (see dagster_internals._claim_free_slot): every
# process that runs steps loads these definitions first.
dagster_internals.atomic_pool_claims()

ALL_ASSETS = [
    product_catalog,
    product_images,
    image_reviews,
    image_manifest,
    linked_catalog,
    generation_report,
]

# Steps run in their run's own process, one after another, not in a process per step: a run's steps do
# little work each beside the thread pool of `product_images`, and a step process costs a Python start-up and
# a second load of these definitions (publishing 20 products took 88 s with a process per step, 18 s in
# process). Scale comes from runs: one per batch, bounded by the pool and the run queue. This is Dagster's
# default executor with `in_process` as its default, so every job, `dagster asset materialize` and every
# backfill run takes it; a run's config can still ask for `execution: {config: {multiprocess: {}}}`.
RUN_EXECUTOR = multi_or_in_process_executor.configured(
    lambda config: config,
    name="multi_or_in_process_executor",
    config_schema=Field(
        multi_or_in_process_executor.config_schema.config_type, default_value={"in_process": {}}
    ),
)

catalog_job = define_asset_job("catalog_job", selection=AssetSelection.assets(product_catalog))
# partitioned by product_batches, inferred from its assets: a batch's images, then their reviews
product_images_job = define_asset_job(
    "product_images_job", selection=AssetSelection.assets(product_images, image_reviews)
)
publish_job = define_asset_job(
    "publish_job", selection=AssetSelection.assets(image_manifest, linked_catalog, generation_report)
)


GENERATION_MODES = ("sync", "batch")


def generation_mode(env: Mapping[str, str]) -> str:
    """`CATALOG_GENERATION_MODE` (sync | batch, default sync). Read when the definitions load, like the choice
    of implementations: a `Literal` field takes no `EnvVar`, and the value is no secret."""
    mode = (env.get("CATALOG_GENERATION_MODE") or "sync").strip().lower()
    if mode not in GENERATION_MODES:
        raise ValueError(
            f"CATALOG_GENERATION_MODE must be 'sync' or 'batch', not {env.get('CATALOG_GENERATION_MODE')!r}"
        )
    return mode


def resources_for_environment(env: Mapping[str, str] | None = None) -> dict[str, ConfigurableResource]:
    """Production forms where their settings exist, embedded defaults otherwise."""
    env = os.environ if env is None else env
    resources: dict[str, ConfigurableResource] = {}
    mode = generation_mode(env)
    if env.get("OPENAI_API_KEY"):
        from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource

        resources["image_generator"] = OpenAIImageGeneratorResource(
            api_key=EnvVar("OPENAI_API_KEY"),
            **({"model": EnvVar("CATALOG_IMAGE_MODEL")} if env.get("CATALOG_IMAGE_MODEL") else {}),
            **({"size": EnvVar("CATALOG_IMAGE_SIZE")} if env.get("CATALOG_IMAGE_SIZE") else {}),
            **(
                {"images_per_minute": EnvVar.int("CATALOG_IMAGES_PER_MINUTE")}
                if env.get("CATALOG_IMAGES_PER_MINUTE")
                else {}
            ),
            generation_mode=mode,
        )
    else:
        resources["image_generator"] = OfflineImageGeneratorResource()
    # Both stores: the URL the store is served under (a CDN, or a web server in front of the directory).
    public_base_url = (
        {"public_base_url": EnvVar("CATALOG_PUBLIC_BASE_URL")} if env.get("CATALOG_PUBLIC_BASE_URL") else {}
    )
    if env.get("CATALOG_S3_BUCKET"):
        from catalog_assets.resources.s3_store import S3ImageStoreResource

        resources["store"] = S3ImageStoreResource(
            bucket=EnvVar("CATALOG_S3_BUCKET"),
            **({"prefix": EnvVar("CATALOG_S3_PREFIX")} if env.get("CATALOG_S3_PREFIX") else {}),
            **public_base_url,
        )
    else:
        resources["store"] = LocalImageStoreResource(
            **({"root": EnvVar("CATALOG_STORE_DIR")} if env.get("CATALOG_STORE_DIR") else {}),
            **public_base_url,
        )
    if env.get("REDIS_URL"):
        from catalog_assets.resources.redis_coordination import RedisCoordinationResource

        resources["coordination"] = RedisCoordinationResource(redis_url=EnvVar("REDIS_URL"))
    else:
        from catalog_assets.resources.local_coordination import LocalCoordinationResource

        resources["coordination"] = LocalCoordinationResource()
    resources.update(search_resources_for_environment(env))
    return resources


def search_resources_for_environment(env: Mapping[str, str]) -> dict[str, ConfigurableResource]:
    """The image reviewer and the text embedder: the OpenAI forms (key through `EnvVar`; like the image
    generator's, their SDK client reads OPENAI_BASE_URL itself; models from CATALOG_REVIEW_MODEL / CATALOG_EMBEDDING_MODEL)
    when OPENAI_API_KEY is set, else the offline reviewer and the hashing embedding."""
    if not env.get("OPENAI_API_KEY"):
        return {
            "image_reviewer": OfflineImageReviewerResource(),
            "text_embedder": HashingTextEmbedderResource(),
        }
    from catalog_assets.resources.embedder import OpenAITextEmbedderResource
    from catalog_assets.resources.image_reviewer import OpenAIImageReviewerResource

    return {
        "image_reviewer": OpenAIImageReviewerResource(
            api_key=EnvVar("OPENAI_API_KEY"),
            **({"model": EnvVar("CATALOG_REVIEW_MODEL")} if env.get("CATALOG_REVIEW_MODEL") else {}),
        ),
        "text_embedder": OpenAITextEmbedderResource(
            api_key=EnvVar("OPENAI_API_KEY"),
            **({"model": EnvVar("CATALOG_EMBEDDING_MODEL")} if env.get("CATALOG_EMBEDDING_MODEL") else {}),
        ),
    }


defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[catalog_job, product_images_job, publish_job],
    schedules=[build_failed_batches_retry_schedule()],
    sensors=[
        catalog_batches_sensor,
        catalog_publish_sensor,
        build_batch_images_sensor(running=generation_mode(os.environ) == "batch"),
    ],
    resources=resources_for_environment(),
    executor=RUN_EXECUTOR,
)
