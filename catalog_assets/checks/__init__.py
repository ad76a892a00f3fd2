"""Asset checks: is the catalog sane, did the batches work, and are the published images valid, distinct and
really in the store — each result explains its figure and the threshold it was held to.

`names` holds the check names and which of them block publishing; `thresholds` what the checks tolerate
(`CATALOG_CHECK_*` variables); `results` how a result is told; `outcome_rates`, `image_checks`,
`figures`, `links`, `reviews` and `vectors` the checks themselves.
"""

from catalog_assets.checks.figures import image_figures
from catalog_assets.checks.image_checks import stored_image_checks
from catalog_assets.checks.links import linked_urls_resolve
from catalog_assets.checks.names import (
    BATCH_FAILURE_RATE,
    BLOCKING_MANIFEST_CHECKS,
    CONTENT_POLICY_RATE,
    FALLBACK_RATE,
    IMAGE_FIGURES,
    IMAGE_VALIDITY,
    LINKED_URLS_RESOLVE,
    LINKED_VECTORS,
    MANIFEST_MATCHES_STORE,
    NEAR_DUPLICATE_IMAGES,
    OVERALL_FAILURE_RATE,
    QUARANTINE_RATE,
    REVIEW_REJECTION_RATE,
)
from catalog_assets.checks.outcome_rates import generation_outcome_checks, quarantine_rate
from catalog_assets.checks.reviews import review_rejection_rate
from catalog_assets.checks.vectors import linked_vectors_valid

#: every check, for `Definitions(asset_checks=...)` and for `materialize([*ALL_ASSETS, *ALL_CHECKS], ...)`
ALL_CHECKS = [
    quarantine_rate,
    generation_outcome_checks,
    stored_image_checks,
    image_figures,
    linked_urls_resolve,
    linked_vectors_valid,
    review_rejection_rate,
]

__all__ = [
    "ALL_CHECKS",
    "BATCH_FAILURE_RATE",
    "BLOCKING_MANIFEST_CHECKS",
    "CONTENT_POLICY_RATE",
    "FALLBACK_RATE",
    "IMAGE_FIGURES",
    "IMAGE_VALIDITY",
    "LINKED_URLS_RESOLVE",
    "LINKED_VECTORS",
    "MANIFEST_MATCHES_STORE",
    "NEAR_DUPLICATE_IMAGES",
    "OVERALL_FAILURE_RATE",
    "QUARANTINE_RATE",
    "REVIEW_REJECTION_RATE",
    "generation_outcome_checks",
    "image_figures",
    "linked_urls_resolve",
    "linked_vectors_valid",
    "quarantine_rate",
    "review_rejection_rate",
    "stored_image_checks",
]
