"""The stored images, on image_manifest and blocking (they gate linked_catalog): every image decodes at its
recorded size and is not flat, no two products share a picture, and every manifest row matches the store."""

import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    multi_asset_check,
)

from catalog_assets import state
from catalog_assets.checks.names import (
    BLOCKING_MANIFEST_CHECKS,
    IMAGE_MANIFEST,
    IMAGE_VALIDITY,
    MANIFEST_MATCHES_STORE,
    NEAR_DUPLICATE_IMAGES,
)
from catalog_assets.checks.results import not_judged, selected, table
from catalog_assets.checks.thresholds import CheckThresholds, ThresholdError, threshold_metadata
from catalog_assets.imaging import DHASH_SIZE, ImageFacts, InvalidImage, inspect_image, near_duplicate_pairs
from catalog_assets.resources.store import ImageStore, ImageStoreResource, sha256_hex

_IMAGE_SPECS = [
    AssetCheckSpec(
        IMAGE_VALIDITY,
        asset=IMAGE_MANIFEST,
        blocking=True,
        description="Every manifest image decodes, has the width and height its manifest row records, and is "
        "not blank or a single flat colour (pixel standard deviation at least "
        "CATALOG_CHECK_MIN_PIXEL_STDDEV, default 4). ERROR, blocking: linked_catalog is not published.",
    ),
    AssetCheckSpec(
        NEAR_DUPLICATE_IMAGES,
        asset=IMAGE_MANIFEST,
        blocking=True,
        description="No two products' images are near-identical: their 256-bit difference hashes differ in more "
        "than CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS bits (default 16; distinct pictures differ by ~40 or more, "
        "one picture re-encoded by ~6-10). A generator stuck on one picture is a failure. ERROR, blocking.",
    ),
    AssetCheckSpec(
        MANIFEST_MATCHES_STORE,
        asset=IMAGE_MANIFEST,
        blocking=True,
        description="Every manifest row's object exists in the store with the recorded size and sha256, and its "
        "thumbnail exists. ERROR, blocking: linked_catalog is not published.",
    ),
]


@dataclass
class ImageCheck:
    """What one manifest row's object turned out to be."""

    row: Mapping[str, Any]
    size: int | None = None  # None: the object is missing
    sha256: str | None = None
    facts: ImageFacts | None = None
    error: str | None = None


def _check_row(store: ImageStore, row: Mapping[str, Any], min_stddev: float) -> ImageCheck:
    try:
        data = store.get(row["key"])
    except KeyError:
        return ImageCheck(row)
    result = ImageCheck(row, size=len(data), sha256=sha256_hex(data))
    try:
        result.facts = inspect_image(data, min_stddev)
    except InvalidImage as exc:
        result.error = str(exc)
    return result


@multi_asset_check(
    specs=_IMAGE_SPECS,
    can_subset=True,
    description="Fetches every manifest image once and checks its bytes, pixels and perceptual hash.",
)
def stored_image_checks(
    context: AssetCheckExecutionContext, store: ImageStoreResource
) -> Iterator[AssetCheckResult]:
    try:
        thresholds = CheckThresholds.from_env()
    except ThresholdError as exc:
        yield from selected(context, IMAGE_MANIFEST, [not_judged(n, exc) for n in BLOCKING_MANIFEST_CHECKS])
        return
    client = store.get_client()
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        missing = "no manifest in the store (manifests/latest.json): materialize image_manifest first"
        yield from selected(
            context,
            IMAGE_MANIFEST,
            [
                AssetCheckResult(check_name=n, passed=False, description=missing)
                for n in BLOCKING_MANIFEST_CHECKS
            ],
        )
        return
    rows = manifest["rows"]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=thresholds.image_workers) as pool:  # PIL and I/O release the GIL
        checked = list(pool.map(lambda r: _check_row(client, r, thresholds.min_pixel_stddev), rows))
    decode_s = round(time.monotonic() - started, 2)
    thumbnails = {o.key for o in client.list("thumbnails/")}
    yield from selected(
        context,
        IMAGE_MANIFEST,
        [
            _validity_result(checked, thresholds, decode_s),
            _near_duplicate_result(checked, thresholds),
            _consistency_result(checked, thumbnails, client.location),
        ],
    )


def _validity_result(checked: list[ImageCheck], t: CheckThresholds, decode_s: float) -> AssetCheckResult:
    problems = []
    for c in checked:
        pid, key = c.row["product_id"], c.row["key"]
        if c.size is None:
            problems.append([pid, key, "object missing from the store"])
        elif c.error:
            problems.append([pid, key, c.error])
        elif c.facts and (c.facts.width, c.facts.height) != (c.row.get("width"), c.row.get("height")):
            problems.append(
                [
                    pid,
                    key,
                    f"image is {c.facts.width}x{c.facts.height}, manifest records "
                    f"{c.row.get('width')}x{c.row.get('height')}",
                ]
            )
    return AssetCheckResult(
        check_name=IMAGE_VALIDITY,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} of {len(checked)} manifest images are not valid"
        if problems
        else f"all {len(checked)} manifest images decode, have their recorded size and are not flat",
        metadata={
            "images_checked": len(checked),
            "invalid_images": len(problems),
            **threshold_metadata("min_pixel_stddev", t.min_pixel_stddev),
            "invalid": table(["product", "key", "problem"], problems),
            "check_duration_s": decode_s,
            "explanation": "each image is fetched and decoded (JPEG at 1/8 scale: every coefficient is still "
            "decoded, so a broken stream fails); its header size must equal the manifest row's width x height, "
            "and its pixel standard deviation must reach the threshold (below it the picture is blank or flat)",
        },
    )


def _near_duplicate_result(checked: list[ImageCheck], t: CheckThresholds) -> AssetCheckResult:
    hashes = [(c.row["product_id"], c.facts.dhash) for c in checked if c.facts]
    pairs, closest = near_duplicate_pairs(hashes, t.near_duplicate_max_bits)
    return AssetCheckResult(
        check_name=NEAR_DUPLICATE_IMAGES,
        passed=not pairs,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(pairs)} pairs of different products have near-identical images"
        if pairs
        else f"no two of {len(hashes)} images are within {t.near_duplicate_max_bits} bits",
        metadata={
            "images_hashed": len(hashes),
            "near_duplicate_pairs": len(pairs),
            "products_involved": len({p for a, b, _ in pairs for p in (a, b)}),
            "closest_pair_bits": closest if closest is not None else -1,
            **threshold_metadata("near_duplicate_max_bits", t.near_duplicate_max_bits),
            "pairs": table(["product", "product", "bits apart"], [list(p) for p in pairs]),
            "explanation": f"{DHASH_SIZE * DHASH_SIZE}-bit difference hash (dhash, hash_size {DHASH_SIZE}) of "
            "every image; a pair at most threshold bits apart is the same picture. Distinct product cards "
            "differ by about 40 bits or more, the same picture re-encoded by about 6-10",
        },
    )


def _consistency_result(checked: list[ImageCheck], thumbnails: set[str], location: str) -> AssetCheckResult:
    problems = []
    for c in checked:
        row = c.row
        pid, key = row["product_id"], row["key"]
        if c.size is None:
            problems.append([pid, key, "missing from the store"])
            continue
        if c.size != row.get("bytes"):
            problems.append([pid, key, f"{c.size} bytes in the store, {row.get('bytes')} recorded"])
        if c.sha256 != row.get("sha256"):
            problems.append(
                [pid, key, f"sha256 {c.sha256[:12]}… in the store, {str(row.get('sha256'))[:12]}… recorded"]
            )
        if row.get("thumbnail_key") and row["thumbnail_key"] not in thumbnails:
            problems.append([pid, row["thumbnail_key"], "thumbnail missing from the store"])
    missing = sum(1 for c in checked if c.size is None)
    return AssetCheckResult(
        check_name=MANIFEST_MATCHES_STORE,
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} problems: manifest rows do not match the store {location}"
        if problems
        else f"all {len(checked)} manifest rows match the store {location}",
        metadata={
            "rows_checked": len(checked),
            "problems": len(problems),
            "missing_objects": missing,
            "mismatches": table(["product", "key", "problem"], problems),
            "explanation": "each row's object is fetched: it must exist, its length must equal `bytes` and the "
            "sha256 of its bytes must equal `sha256`; the row's thumbnail must be listed in the store",
        },
    )
