"""The checks' names and the assets they judge: the public interface of the checks (UI, `dagster asset check
--select`, tests) and what the publish gate reads, with no import of the checks or assets themselves."""

from dagster import AssetKey

QUARANTINE_RATE = "quarantine_rate"
BATCH_FAILURE_RATE = "batch_failure_rate"
OVERALL_FAILURE_RATE = "overall_failure_rate"
FALLBACK_RATE = "fallback_rate"
CONTENT_POLICY_RATE = "content_policy_rate"
IMAGE_VALIDITY = "image_validity"
NEAR_DUPLICATE_IMAGES = "near_duplicate_images"
MANIFEST_MATCHES_STORE = "manifest_matches_store"
LINKED_URLS_RESOLVE = "linked_urls_resolve"
IMAGE_FIGURES = "image_figures"
LINKED_VECTORS = "linked_vectors"
REVIEW_REJECTION_RATE = "review_rejection_rate"

#: checks on image_manifest that gate linked_catalog
BLOCKING_MANIFEST_CHECKS = (IMAGE_VALIDITY, NEAR_DUPLICATE_IMAGES, MANIFEST_MATCHES_STORE)

# The checks name their assets by key, so the asset modules can import this package without a cycle.
PRODUCT_CATALOG = AssetKey("product_catalog")
IMAGE_MANIFEST = AssetKey("image_manifest")
LINKED_CATALOG = AssetKey("linked_catalog")
