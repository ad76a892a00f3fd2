"""Asset checks: is the catalog sane, did the batches work, and are the published images valid, distinct and
really in the store — each result explains its figure and the threshold it was held to.

Failure rates are computed over the batches' outcome records (`state/outcomes/<partition>.json`), in checks
on `image_manifest`, not as partitioned checks of `product_images`: a `product_images` partition fails as
soon as one product failed, and Dagster skips a check whose asset step failed (seen in 1.13, where
partitioned checks are also still a preview). A per-partition check would therefore only ever run on
batches with no failure and report 0 %. The outcome records keep every batch's last result, so the checks
on `image_manifest` see the failed batches too, and they run in every publish run.

Thresholds are read from `CATALOG_CHECK_*` environment variables when a check runs (`CheckThresholds`);
every result names the variable that sets its threshold.
"""

import dataclasses
import io
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    Failure,
    MetadataValue,
    asset_check,
    multi_asset_check,
)
from PIL import Image, UnidentifiedImageError

from catalog_assets import imaging, state
from catalog_assets.assets.catalog import product_catalog
from catalog_assets.assets.manifest import image_manifest, linked_catalog
from catalog_assets.errors import ErrorClass
from catalog_assets.manifest import collect_outcomes
from catalog_assets.resources.store import ImageStore, ImageStoreResource, sha256_hex
from catalog_assets.util import md_table

# Check names: the public interface of the checks (UI, `dagster asset check --select`, tests).
QUARANTINE_RATE = "quarantine_rate"
BATCH_FAILURE_RATE = "batch_failure_rate"
OVERALL_FAILURE_RATE = "overall_failure_rate"
FALLBACK_RATE = "fallback_rate"
CONTENT_POLICY_RATE = "content_policy_rate"
IMAGE_VALIDITY = "image_validity"
NEAR_DUPLICATE_IMAGES = "near_duplicate_images"
MANIFEST_MATCHES_STORE = "manifest_matches_store"
LINKED_URLS_RESOLVE = "linked_urls_resolve"
#: checks on image_manifest that gate linked_catalog
BLOCKING_MANIFEST_CHECKS = (IMAGE_VALIDITY, NEAR_DUPLICATE_IMAGES, MANIFEST_MATCHES_STORE)

ENV_PREFIX = "CATALOG_CHECK_"
#: bits of the difference hash used for near-duplicates (hash_size 16: 256 bits)
DHASH_SIZE = 16
#: JPEGs are decoded at 1/8 scale (DCT scaling): every coefficient of every scan is still entropy-decoded,
#: so truncated or broken streams fail exactly as in a full decode, at about half its cost (measured on
#: the progressive 1024² JPEGs this pipeline writes: 11 ms instead of 21 ms each). Sizes come from the header.
DRAFT_PX = 128
#: rows listed in a result's problem table (the counts are always complete)
TABLE_ROWS = 50


@dataclass(frozen=True)
class CheckThresholds:
    """What the checks tolerate. Each field is set by `CATALOG_CHECK_<FIELD>` (e.g.
    `CATALOG_CHECK_MAX_BATCH_FAILURE_RATE=0.2`), read when a check runs: no code change or reload needed."""

    #: share of catalog rows quarantined by validation
    max_quarantine_rate: float = 0.05
    #: share of one batch's products whose last outcome is `failed`, for the worst batch
    max_batch_failure_rate: float = 0.10
    #: share of all products with an outcome whose last outcome is `failed`
    max_failure_rate: float = 0.02
    #: share of stored images that are offline fallback cards
    max_fallback_rate: float = 0.05
    #: share of products refused at least once for content policy (errors_total, or refined)
    max_content_policy_rate: float = 0.10
    #: two products' images are near-duplicates at most this many of the 256 dhash bits apart
    near_duplicate_max_bits: int = 16
    #: an image whose pixel standard deviation is below this is blank or a single flat colour
    min_pixel_stddev: float = 4.0
    #: images fetched and decoded at once by the image checks
    image_workers: int = 8

    @staticmethod
    def env_name(field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CheckThresholds":
        """Defaults overridden by the `CATALOG_CHECK_*` variables that are set; a bad value raises ValueError."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = cls.env_name(f.name)
            raw = env.get(name, "").strip()
            if not raw:
                continue
            kind = type(f.default)  # int or float
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(
                    f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None
            if value < 0 or (f.name.endswith("_rate") and value > 1):
                raise ValueError(
                    f"{name}={raw!r} is out of range ({'0..1' if f.name.endswith('_rate') else '>= 0'})"
                )
            values[f.name] = value
        if values.get("image_workers") == 0:
            raise ValueError(f"{cls.env_name('image_workers')} must be at least 1")
        return cls(**values)


def _thresholds() -> CheckThresholds:
    try:
        return CheckThresholds.from_env()
    except ValueError as exc:
        raise Failure(description=f"check threshold setting: {exc}") from None


def _threshold(field: str, value: float | int) -> dict[str, Any]:
    return {"threshold": value, "threshold_setting": MetadataValue.text(CheckThresholds.env_name(field))}


def _rate(numerator: int, denominator: int) -> float:
    """Exact, for the comparison with the threshold; metadata shows it rounded (`_shown`)."""
    return numerator / denominator if denominator else 0.0


def _shown(rate: float) -> float:
    return round(rate, 4)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> MetadataValue:
    shown = list(rows[:TABLE_ROWS])
    more = f"\n\n… and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    return MetadataValue.md(md_table(headers, shown) + more if shown else "none")


# -- product_catalog ------------------------------------------------------------------------------------


@asset_check(
    asset=product_catalog,
    name=QUARANTINE_RATE,
    description="Share of catalog rows rejected by validation (quarantined rows / rows read). Fails with WARN "
    "above CATALOG_CHECK_MAX_QUARANTINE_RATE (default 0.05): many rejected rows usually mean a wrong file or "
    "column mapping rather than bad products.",
)
def quarantine_rate(store: ImageStoreResource) -> AssetCheckResult:
    thresholds = _thresholds()
    index = state.read_index(store.get_client())
    if not index:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description="no catalog index in the store: product_catalog has not been materialized here",
        )
    rows_read = int(index.get("rows_read") or 0)
    quarantined = list(index.get("quarantined") or [])
    rate = _rate(len(quarantined), rows_read)
    limit = thresholds.max_quarantine_rate
    reasons = Counter(str(q.get("reason", "")).split(" (")[0] for q in quarantined)
    return AssetCheckResult(
        passed=rate <= limit,
        severity=AssetCheckSeverity.WARN,
        description=f"{len(quarantined)} of {rows_read} catalog rows quarantined ({_pct(rate)}; at most "
        f"{_pct(limit)} tolerated)",
        metadata={
            "quarantine_rate": _shown(rate),
            "quarantined": len(quarantined),
            "rows_read": rows_read,
            **_threshold("max_quarantine_rate", limit),
            "reasons": _table(["reason", "rows"], reasons.most_common()),
            "explanation": "quarantined rows / rows read; quarantined rows get no image",
        },
    )


# -- outcomes of the batches (on image_manifest, non-blocking) ---------------------------------------------

_OUTCOME_SPECS = [
    AssetCheckSpec(
        BATCH_FAILURE_RATE,
        asset=image_manifest,
        description="Worst batch's share of products whose last outcome is `failed`, from the batches' outcome "
        "records. Fails with ERROR when any batch is above CATALOG_CHECK_MAX_BATCH_FAILURE_RATE (default 0.10). "
        "Not blocking: failed products have no image and get no URL, so the linked catalog stays correct.",
    ),
    AssetCheckSpec(
        OVERALL_FAILURE_RATE,
        asset=image_manifest,
        description="Share of all products whose last outcome is `failed`. Fails with ERROR above "
        "CATALOG_CHECK_MAX_FAILURE_RATE (default 0.02). Not blocking, like the batch failure rate.",
    ),
    AssetCheckSpec(
        FALLBACK_RATE,
        asset=image_manifest,
        description="Share of stored images that are offline fallback cards rather than generated pictures. "
        "Fails with WARN above CATALOG_CHECK_MAX_FALLBACK_RATE (default 0.05).",
    ),
    AssetCheckSpec(
        CONTENT_POLICY_RATE,
        asset=image_manifest,
        description="Share of products refused at least once for content policy (a `content_policy` error in "
        "their outcome's errors_total, or an image made from a refined prompt). Fails with WARN above "
        "CATALOG_CHECK_MAX_CONTENT_POLICY_RATE (default 0.10): prompts that trip moderation need rewording.",
    ),
]


@dataclass(frozen=True)
class OutcomeFigures:
    """The rates of the outcome checks, from the batches' last outcome records."""

    by_batch: dict[str, Counter]  # partition -> Counter of outcomes
    failed_classes: dict[str, Counter]  # partition -> Counter of error classes of failed products
    batches_without_outcomes: list[str]
    products: int
    failed: int
    with_image: int
    fallback: int
    content_policy: int
    content_policy_ids: list[str]


def outcome_figures(index: Mapping[str, Any], outcomes: Mapping[str, Mapping[str, Any]]) -> OutcomeFigures:
    """Counts behind the failure, fallback and content-policy rates (pure: tested without Dagster)."""
    by_batch: dict[str, Counter] = {p: Counter() for p in index.get("partitions", [])}
    failed_classes: dict[str, Counter] = defaultdict(Counter)
    fallback = with_image = 0
    content_policy_ids = []
    for pid, rec in outcomes.items():
        outcome = rec.get("outcome")
        by_batch.setdefault(rec["partition"], Counter())[outcome] += 1
        if outcome == "failed":
            failed_classes[rec["partition"]][rec.get("error_class") or "unknown"] += 1
        elif rec.get("key"):
            with_image += 1
            fallback += rec.get("source") == "fallback"
        errors = rec.get("errors_total", rec.get("errors")) or []
        if ErrorClass.CONTENT_POLICY.value in errors or rec.get("source") == "refined":
            content_policy_ids.append(pid)
    return OutcomeFigures(
        by_batch={p: c for p, c in by_batch.items() if c},
        failed_classes=dict(failed_classes),
        batches_without_outcomes=sorted(p for p, c in by_batch.items() if not c),
        products=len(outcomes),
        failed=sum(c["failed"] for c in by_batch.values()),
        with_image=with_image,
        fallback=fallback,
        content_policy=len(content_policy_ids),
        content_policy_ids=sorted(content_policy_ids),
    )


@multi_asset_check(
    specs=_OUTCOME_SPECS,
    can_subset=True,
    description="Failure, fallback and content-policy rates over the batches' outcome records.",
)
def generation_outcome_checks(
    context: AssetCheckExecutionContext, store: ImageStoreResource
) -> Iterator[AssetCheckResult]:
    thresholds = _thresholds()
    client = store.get_client()
    index = state.read_index(client)
    figures = outcome_figures(index, collect_outcomes(client, index.get("partitions", [])))
    not_run = {
        "batches_without_outcomes": len(figures.batches_without_outcomes),
        "batches_not_yet_run": MetadataValue.text(", ".join(figures.batches_without_outcomes[:20]) or "none"),
    }
    results: list[AssetCheckResult] = []

    rates = {p: _rate(c["failed"], sum(c.values())) for p, c in figures.by_batch.items()}
    limit = thresholds.max_batch_failure_rate
    over = sorted((p for p, r in rates.items() if r > limit), key=lambda p: (-rates[p], p))
    worst = max((p for p in rates if rates[p]), key=lambda p: (rates[p], p), default=None)
    results.append(
        AssetCheckResult(
            check_name=BATCH_FAILURE_RATE,
            passed=not over,
            severity=AssetCheckSeverity.ERROR,
            description=(
                f"{len(over)} of {len(rates)} batches have more than {_pct(limit)} failed products; worst "
                f"{worst} at {_pct(rates[worst])}"
                if over
                else f"every batch at most {_pct(limit)} failed"
                + (f" (worst {worst} at {_pct(rates[worst])})" if worst else "")
            ),
            metadata={
                "worst_batch_failure_rate": _shown(rates[worst]) if worst else 0.0,
                "worst_batch": MetadataValue.text(worst or "none"),
                "batches_over_threshold": len(over),
                "batches_checked": len(rates),
                **_threshold("max_batch_failure_rate", limit),
                "failing_batches": _table(
                    ["batch", "failed", "products", "rate", "error classes"],
                    [
                        [
                            p,
                            figures.by_batch[p]["failed"],
                            sum(figures.by_batch[p].values()),
                            _pct(rates[p]),
                            ", ".join(f"{k} {v}" for k, v in figures.failed_classes.get(p, {}).items()),
                        ]
                        for p in over
                    ],
                ),
                **not_run,
                "explanation": "per batch: products whose last outcome is failed / products with an outcome; "
                "rerun a failing batch (failed_batches_retry_schedule does it nightly) to redo only its failures",
            },
        )
    )

    overall = _rate(figures.failed, figures.products)
    limit = thresholds.max_failure_rate
    results.append(
        AssetCheckResult(
            check_name=OVERALL_FAILURE_RATE,
            passed=overall <= limit,
            severity=AssetCheckSeverity.ERROR,
            description=f"{figures.failed} of {figures.products} products failed ({_pct(overall)}; at most "
            f"{_pct(limit)} tolerated)",
            metadata={
                "failure_rate": _shown(overall),
                "failed": figures.failed,
                "products": figures.products,
                **_threshold("max_failure_rate", limit),
                **not_run,
                "explanation": "products whose last outcome is failed / products with an outcome record",
            },
        )
    )

    rate = _rate(figures.fallback, figures.with_image)
    limit = thresholds.max_fallback_rate
    results.append(
        AssetCheckResult(
            check_name=FALLBACK_RATE,
            passed=rate <= limit,
            severity=AssetCheckSeverity.WARN,
            description=f"{figures.fallback} of {figures.with_image} stored images are fallback cards "
            f"({_pct(rate)}; at most {_pct(limit)} tolerated)",
            metadata={
                "fallback_rate": _shown(rate),
                "fallback_images": figures.fallback,
                "stored_images": figures.with_image,
                **_threshold("max_fallback_rate", limit),
                "explanation": "images whose source is fallback (offline card after repeated failures or a "
                "refused refined prompt) / products with a stored image",
            },
        )
    )

    rate = _rate(figures.content_policy, figures.products)
    limit = thresholds.max_content_policy_rate
    results.append(
        AssetCheckResult(
            check_name=CONTENT_POLICY_RATE,
            passed=rate <= limit,
            severity=AssetCheckSeverity.WARN,
            description=f"{figures.content_policy} of {figures.products} products were refused for content "
            f"policy at least once ({_pct(rate)}; at most {_pct(limit)} tolerated)",
            metadata={
                "content_policy_rate": _shown(rate),
                "refused_products": figures.content_policy,
                "products": figures.products,
                **_threshold("max_content_policy_rate", limit),
                "sample": MetadataValue.text(", ".join(figures.content_policy_ids[:20]) or "none"),
                "explanation": "products with a content_policy error in errors_total (over every run of the "
                "same prompt) or whose image came from a refined prompt / products with an outcome record",
            },
        )
    )
    yield from _selected(context, results)


def _selected(
    context: AssetCheckExecutionContext, results: Iterable[AssetCheckResult]
) -> Iterator[AssetCheckResult]:
    """Only the results of the checks this run selected (the UI can execute one check of a multi-check)."""
    selected = context.selected_asset_check_keys
    for result in results:
        if AssetCheckKey(image_manifest.key, result.check_name) in selected:
            yield result


# -- the stored images (on image_manifest, blocking: they gate linked_catalog) ------------------------------

_IMAGE_SPECS = [
    AssetCheckSpec(
        IMAGE_VALIDITY,
        asset=image_manifest,
        blocking=True,
        description="Every manifest image decodes, has the width and height its manifest row records, and is "
        "not blank or a single flat colour (pixel standard deviation at least "
        "CATALOG_CHECK_MIN_PIXEL_STDDEV, default 4). ERROR, blocking: linked_catalog is not published.",
    ),
    AssetCheckSpec(
        NEAR_DUPLICATE_IMAGES,
        asset=image_manifest,
        blocking=True,
        description="No two products' images are near-identical: their 256-bit difference hashes differ in more "
        "than CATALOG_CHECK_NEAR_DUPLICATE_MAX_BITS bits (default 16; distinct pictures differ by ~40 or more, "
        "one picture re-encoded by ~6-10). A generator stuck on one picture is a failure. ERROR, blocking.",
    ),
    AssetCheckSpec(
        MANIFEST_MATCHES_STORE,
        asset=image_manifest,
        blocking=True,
        description="Every manifest row's object exists in the store with the recorded size and sha256, and its "
        "thumbnail exists. ERROR, blocking: linked_catalog is not published.",
    ),
]


class InvalidImage(ValueError):
    """Bytes that are no usable product image."""


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    stddev: float
    dhash: int


def inspect_image(data: bytes, min_stddev: float = 4.0) -> ImageFacts:
    """Decode (JPEG at 1/8 scale, see DRAFT_PX), take the header's size, test for a flat picture and hash it.
    Raises InvalidImage when the bytes do not decode or the picture is flat."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > imaging.MAX_DECODE_PIXELS:
                raise InvalidImage(f"image is {width}x{height}, too large to decode")
            img.draft("RGB", (DRAFT_PX, DRAFT_PX))
            img.load()
            small = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidImage):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidImage(f"does not decode: {first}") from None
    if small.width > 4 * DRAFT_PX:  # not a JPEG: fully decoded, shrink once for the two measures below
        small = small.reduce(max(1, small.width // DRAFT_PX))
    try:
        stddev = imaging.check_image(small, min_stddev=min_stddev).stddev
    except imaging.InvalidImage as exc:
        raise InvalidImage(str(exc)) from None
    return ImageFacts(width, height, stddev, imaging.dhash(small, DHASH_SIZE))


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


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(words)
    return _POPCOUNT8[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


def near_duplicate_pairs(
    hashes: Sequence[tuple[str, int]], max_bits: int, bits: int = DHASH_SIZE * DHASH_SIZE
) -> tuple[list[tuple[str, str, int]], int | None]:
    """Every pair of hashes at most `max_bits` apart as (id_a, id_b, distance), closest first, and the
    smallest distance of any pair (None for fewer than two hashes), which shows how far apart images are.

    All pairs are compared, block by block of rows (5,000 images: 12.5 M pairs in about 0.3 s, ~10 MB)."""
    n = len(hashes)
    if n < 2:
        return [], None
    mask = (1 << 64) - 1
    words = np.array(
        [[(h >> (64 * w)) & mask for _, h in hashes] for w in range((bits + 63) // 64)], dtype=np.uint64
    )
    columns = np.arange(n)
    pairs: list[tuple[str, str, int]] = []
    closest = bits
    block = max(1, 1_000_000 // n)
    for start in range(0, n - 1, block):
        stop = min(n, start + block)
        dist = np.zeros((stop - start, n), dtype=np.uint16)
        for word in words:
            dist += _popcount(word[start:stop, None] ^ word[None, :])
        # keep pairs (i, j) with j > i only: the others are self-pairs or seen in an earlier row
        dist[columns[None, :] <= np.arange(start, stop)[:, None]] = bits + 1
        closest = min(closest, int(dist.min()))
        rows, cols = np.nonzero(dist <= max_bits)
        pairs += [
            (hashes[start + r][0], hashes[c][0], int(dist[r, c]))
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1])), closest


@multi_asset_check(
    specs=_IMAGE_SPECS,
    can_subset=True,
    description="Fetches every manifest image once and checks its bytes, pixels and perceptual hash.",
)
def stored_image_checks(
    context: AssetCheckExecutionContext, store: ImageStoreResource
) -> Iterator[AssetCheckResult]:
    thresholds = _thresholds()
    client = store.get_client()
    manifest = client.get_json(state.MANIFEST_LATEST_KEY, default=None)
    if manifest is None:
        missing = "no manifest in the store (manifests/latest.json): materialize image_manifest first"
        for name in (IMAGE_VALIDITY, NEAR_DUPLICATE_IMAGES, MANIFEST_MATCHES_STORE):
            yield from _selected(
                context, [AssetCheckResult(check_name=name, passed=False, description=missing)]
            )
        return
    rows = manifest["rows"]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=thresholds.image_workers) as pool:  # PIL and I/O release the GIL
        checked = list(pool.map(lambda r: _check_row(client, r, thresholds.min_pixel_stddev), rows))
    decode_s = round(time.monotonic() - started, 2)
    thumbnails = {o.key for o in client.list("thumbnails/")}
    yield from _selected(
        context,
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
            **_threshold("min_pixel_stddev", t.min_pixel_stddev),
            "invalid": _table(["product", "key", "problem"], problems),
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
            **_threshold("near_duplicate_max_bits", t.near_duplicate_max_bits),
            "pairs": _table(["product", "product", "bits apart"], [list(p) for p in pairs]),
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
            "mismatches": _table(["product", "key", "problem"], problems),
            "explanation": "each row's object is fetched: it must exist, its length must equal `bytes` and the "
            "sha256 of its bytes must equal `sha256`; the row's thumbnail must be listed in the store",
        },
    )


# -- linked_catalog -------------------------------------------------------------------------------------


def _without_query(url: str) -> str:
    """A URL without query and fragment: presigned URLs differ in their signature, not in what they name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@asset_check(
    asset=linked_catalog,
    name=LINKED_URLS_RESOLVE,
    description="Every image URL in the linked catalog maps to an existing object in the store, and to that "
    "product's own image. ERROR, not blocking: only the report is downstream, and it should still be written.",
)
def linked_urls_resolve(store: ImageStoreResource) -> AssetCheckResult:
    client = store.get_client()
    linked = client.get_json(state.LINKED_JSON_KEY, default=None)
    if linked is None:
        return AssetCheckResult(
            passed=False, description=f"no linked catalog in the store ({state.LINKED_JSON_KEY})"
        )
    objects = {_without_query(client.url(o.key)): o.key for o in client.list("images/")}
    problems, with_url = [], 0
    for product in linked:
        image = product.get("image") or {}
        url = image.get("url")
        if not url:
            continue
        with_url += 1
        key = objects.get(_without_query(url))
        if key is None:
            problems.append([product.get("id"), url, "no object in the store at this URL"])
        elif image.get("key") and key != image["key"]:
            problems.append([product.get("id"), url, f"names {key}, the product's image is {image['key']}"])
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} of {with_url} image URLs do not resolve to the product's object"
        if problems
        else f"all {with_url} image URLs resolve to existing objects",
        metadata={
            "products": len(linked),
            "image_urls": with_url,
            "dangling_urls": len(problems),
            "dangling": _table(["product", "url", "problem"], problems),
            "explanation": "each image.url (without query string, so presigned URLs compare by object) must be "
            "the URL of an object listed under images/ in the store, and of the product's own image key",
        },
    )


#: every check, for `Definitions(asset_checks=...)` and for `materialize([*ALL_ASSETS, *ALL_CHECKS], ...)`
ALL_CHECKS = [quarantine_rate, generation_outcome_checks, stored_image_checks, linked_urls_resolve]
