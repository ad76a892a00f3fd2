"""The one place that wires assets, checks, jobs, schedules and sensors to the environment's resources.

Which implementation each role gets is decided here from which settings exist (OPENAI_API_KEY,
CATALOG_S3_BUCKET, REDIS_URL); their values, secrets included, reach the resources through `EnvVar` and
are read when a run starts, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import AssetSelection, ConfigurableResource, Definitions, EnvVar, define_asset_job

from catalog_assets.assets.catalog import product_catalog
from catalog_assets.assets.images import product_images
from catalog_assets.assets.manifest import image_manifest, linked_catalog
from catalog_assets.assets.report import generation_report
from catalog_assets.checks import ALL_CHECKS
from catalog_assets.resources.offline import OfflineImageGeneratorResource
from catalog_assets.resources.store import LocalImageStoreResource
from catalog_assets.schedules import build_failed_batches_retry_schedule
from catalog_assets.sensors import catalog_batches_sensor

ALL_ASSETS = [product_catalog, product_images, image_manifest, linked_catalog, generation_report]

catalog_job = define_asset_job("catalog_job", selection=AssetSelection.assets(product_catalog))
# partitioned by product_batches, inferred from product_images
product_images_job = define_asset_job("product_images_job", selection=AssetSelection.assets(product_images))
publish_job = define_asset_job(
    "publish_job", selection=AssetSelection.assets(image_manifest, linked_catalog, generation_report)
)


def resources_for_environment(env: Mapping[str, str] | None = None) -> dict[str, ConfigurableResource]:
    """Production forms where their settings exist, embedded defaults otherwise."""
    env = os.environ if env is None else env
    resources: dict[str, ConfigurableResource] = {}
    if env.get("OPENAI_API_KEY"):
        from catalog_assets.resources.openai_images import OpenAIImageGeneratorResource

        resources["image_generator"] = OpenAIImageGeneratorResource(
            api_key=EnvVar("OPENAI_API_KEY"),
            **({"model": EnvVar("CATALOG_IMAGE_MODEL")} if env.get("CATALOG_IMAGE_MODEL") else {}),
            **(
                {"images_per_minute": EnvVar.int("CATALOG_IMAGES_PER_MINUTE")}
                if env.get("CATALOG_IMAGES_PER_MINUTE")
                else {}
            ),
        )
    else:
        resources["image_generator"] = OfflineImageGeneratorResource()
    if env.get("CATALOG_S3_BUCKET"):
        from catalog_assets.resources.s3_store import S3ImageStoreResource

        resources["store"] = S3ImageStoreResource(
            bucket=EnvVar("CATALOG_S3_BUCKET"),
            **({"prefix": EnvVar("CATALOG_S3_PREFIX")} if env.get("CATALOG_S3_PREFIX") else {}),
            **(
                {"public_base_url": EnvVar("CATALOG_PUBLIC_BASE_URL")}
                if env.get("CATALOG_PUBLIC_BASE_URL")
                else {}
            ),
        )
    else:
        resources["store"] = LocalImageStoreResource(
            **({"root": EnvVar("CATALOG_STORE_DIR")} if env.get("CATALOG_STORE_DIR") else {})
        )
    if env.get("REDIS_URL"):
        from catalog_assets.resources.redis_coordination import RedisCoordinationResource

        resources["coordination"] = RedisCoordinationResource(redis_url=EnvVar("REDIS_URL"))
    else:
        from catalog_assets.resources.local_coordination import LocalCoordinationResource

        resources["coordination"] = LocalCoordinationResource()
    return resources


defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[catalog_job, product_images_job, publish_job],
    schedules=[build_failed_batches_retry_schedule()],
    sensors=[catalog_batches_sensor],
    resources=resources_for_environment(),
)
