"""What a full run would call and cost, from the catalog and the store alone: no API call, no Dagster run.

Per batch: products already stored with the same fingerprint (a run skips them), products the seed store
holds with that fingerprint (a run copies them: no call), products to generate (new, outdated, and stored
images rejected in review or by a person, which a run retakes), the calls and cost that takes. Batches follow the stored assignment, so the plan holds before product_catalog ran.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_assets import state
from catalog_assets.catalog import BATCH_SIZE, assign_batches, load_catalog, partition_key, products_by_batch
from catalog_assets.costs import PRICES_FILE, price_per_image
from catalog_assets.errors import CatalogError, RunStopped, StoreError
from catalog_assets.generation import GenerationSettings, seed_copy
from catalog_assets.outcomes import image_key
from catalog_assets.prompts import build_prompt, fingerprint
from catalog_assets.resources.image_api import ImageGenerator
from catalog_assets.resources.store import ImageStore, seed_store
from catalog_assets.retakes import AfterRetakes, RetakeOrder, retake_orders


@dataclass(frozen=True)
class BatchPlan:
    partition: str
    products: int
    stored: int  # stored with the current fingerprint: skipped, no call
    outdated: int  # stored, but made from another prompt/model/size/quality: generated again
    fallback: int  # of `stored`, offline cards (content policy or repeated failures)
    imported: int = 0  # not stored, but in the seed store with the current fingerprint: copied, no call
    retakes: int = 0  # stored with the current fingerprint but rejected: generated again (in to_generate)
    to_fallback: int = 0  # of `stored`, rejected with their retakes used up: the offline card, no call

    @property
    def to_generate(self) -> int:
        return self.products - self.stored - self.imported


@dataclass(frozen=True)
class RunPlan:
    catalog: str
    rows_read: int
    quarantined: int
    model: str
    size: str
    quality: str
    paid: bool
    price_per_image_usd: float | None  # None: no estimate in the price table
    images_per_minute: float | None
    max_calls_per_product: int
    store: str
    batches: list[BatchPlan] = field(default_factory=list)
    problem: str | None = None  # why a run would stop before any call (e.g. a retired model)
    seed: str | None = None  # the seed store a run imports from, when there is one
    batch_price_per_image_usd: float | None = None  # the Batch API's price (CATALOG_GENERATION_MODE=batch)
    generation_mode: str = "sync"

    @property
    def imported(self) -> int:
        return sum(b.imported for b in self.batches)

    @property
    def products(self) -> int:
        return sum(b.products for b in self.batches)

    @property
    def stored(self) -> int:
        return sum(b.stored for b in self.batches)

    @property
    def to_generate(self) -> int:
        return sum(b.to_generate for b in self.batches)

    @property
    def retakes(self) -> int:
        return sum(b.retakes for b in self.batches)

    def calls(self, batch: BatchPlan | None = None) -> int:
        """API calls when no call fails: one per image (an offline renderer makes none)."""
        return (batch.to_generate if batch else self.to_generate) if self.paid else 0

    def cost_usd(self, batch: BatchPlan | None = None) -> float | None:
        """Estimated cost of the images to generate; refused or failed calls are not billed."""
        if not self.paid:
            return 0.0
        if self.price_per_image_usd is None:
            return None
        return self.price_per_image_usd * self.calls(batch)

    def batch_cost_usd(self, batch: BatchPlan | None = None) -> float | None:
        """The same images through the Batch API (one line per image, at its discounted price)."""
        if not self.paid:
            return 0.0
        if self.batch_price_per_image_usd is None:
            return None
        return self.batch_price_per_image_usd * self.calls(batch)


def batches_for(
    products: Sequence[Mapping[str, Any]], previous: Mapping[str, int], batch_size: int = BATCH_SIZE
) -> dict[str, list[Mapping[str, Any]]]:
    """The batches product_catalog would make: stored products keep their batch, new ones fill new batches."""
    assignment = assign_batches((p["id"] for p in products), previous, batch_size)
    return {partition_key(n): batch for n, batch in products_by_batch(products, assignment).items()}


def plan_batch(
    partition: str,
    products: Iterable[Mapping[str, Any]],
    store: ImageStore,
    generator: ImageGenerator,
    existing: set[str],
    seed: ImageStore | None = None,
    seeded: set[str] | None = None,
    orders: Mapping[str, RetakeOrder] | None = None,
) -> BatchPlan:
    """Count what a run of one batch skips, imports and generates, as `BatchProcessor` decides it: by
    fingerprint, in the store first, then in the seed store (`seeded`: the image keys it lists); a stored
    image with a retake order (`retake_orders`) is generated again, one whose retakes are used up gets the
    offline card."""
    orders = orders or {}
    count = stored = outdated = fallback = imported = retakes = to_fallback = 0
    for product in products:
        count += 1
        key = image_key(product["id"])
        head = store.head(key) if key in existing else None
        fp = fingerprint(build_prompt(product), generator.model, generator.size, generator.quality)
        if head is not None and fp in (
            head.metadata.get("fingerprint"),
            head.metadata.get("base-fingerprint"),
        ):
            order = orders.get(product["id"])
            if order is not None and order.action == "retake":
                retakes += 1
                continue
            stored += 1
            fallback += head.metadata.get("source") == "fallback"
            to_fallback += order is not None
            continue
        outdated += head is not None
        if seeded and key in seeded and seed_copy(seed, product["id"], fp) is not None:
            imported += 1
    return BatchPlan(partition, count, stored, outdated, fallback, imported, retakes, to_fallback)


def plan_run(
    catalog: str | os.PathLike[str],
    store: ImageStore,
    generator: ImageGenerator,
    *,
    partitions: Sequence[str] | None = None,
    settings: GenerationSettings | None = None,
    seed: ImageStore | None = None,
    max_retakes: int = 1,
    after_retakes: AfterRetakes = "fallback",
) -> RunPlan:
    """The plan of a full run over `catalog` (or only `partitions`), importing from `seed` (the store a run
    would copy matching images from, `seed_store(import_from_dir, store)`), retaking rejected images as
    `product_images` with `max_retakes` / `after_retakes` would. Raises CatalogError for a bad catalog."""
    settings = settings or GenerationSettings()
    loaded = load_catalog(catalog)
    stored_state = store.get_json(state.ASSIGNMENT_KEY, default={}) or {}
    batch_size = int(stored_state.get("batch_size") or BATCH_SIZE)
    batches = batches_for(loaded.products, state.read_assignment(store), batch_size)
    if partitions:
        wanted = set(partitions)
        batches = {k: v for k, v in batches.items() if k in wanted}
    problem = None
    try:
        generator.check_config()
    except RunStopped as exc:
        problem = exc.message
    existing = {o.key for o in store.list("images/")}  # one listing, then a head only where it helps
    seeded = {o.key for o in seed.list("images/")} if seed is not None else set()
    rejections = state.read_rejections(store)

    def orders(partition: str) -> dict[str, RetakeOrder]:
        return retake_orders(
            state.read_outcomes(store, partition),
            state.read_reviews(store, partition),
            rejections,
            max_retakes=max_retakes,
            after_retakes=after_retakes,
        )

    return RunPlan(
        catalog=str(catalog),
        rows_read=loaded.rows_read,
        quarantined=len(loaded.quarantined),
        model=generator.model,
        size=generator.size,
        quality=generator.quality,
        paid=generator.paid,
        price_per_image_usd=price_per_image(generator.model, generator.quality, generator.size),
        images_per_minute=generator.images_per_minute,
        max_calls_per_product=settings.max_calls_per_product,
        store=store.location,
        batches=[
            plan_batch(k, v, store, generator, existing, seed, seeded, orders(k))
            for k, v in sorted(batches.items())
        ],
        problem=problem,
        seed=seed.location if seed is not None else None,
        batch_price_per_image_usd=price_per_image(
            generator.model, generator.quality, generator.size, mode="batch"
        ),
        generation_mode=getattr(generator, "generation_mode", "sync"),
    )


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _images_were(count: int) -> str:
    return "1 stored image was" if count == 1 else f"{count:,} stored images were"


def format_plan(plan: RunPlan) -> str:
    """The plan as the terminal shows it: settings, one line per batch, a total and what it adds up to."""
    if plan.paid:
        price = (
            f"${plan.price_per_image_usd:.3f} per image (estimate, {PRICES_FILE})"
            if plan.price_per_image_usd is not None
            else f"no price estimate in {PRICES_FILE}"
        )
        if plan.batch_price_per_image_usd is not None:
            price += f", ${plan.batch_price_per_image_usd:.3f} through the Batch API"
        limit = f"{plan.images_per_minute:g} images/min" if plan.images_per_minute else "no rate limit"
        generator = (
            f"OpenAI Images API, model {plan.model}, {plan.size}, quality {plan.quality}; {price}; {limit}; "
            f"mode {plan.generation_mode} (CATALOG_GENERATION_MODE)"
        )
    else:
        generator = f"offline renderer ({plan.model}): no API calls, no cost"
    lines = [
        "Dry run: nothing was generated and no API call was made.",
        f"Catalog: {plan.catalog}: {plan.products:,} products in {len(plan.batches)} "
        f"{'batch' if len(plan.batches) == 1 else 'batches'}"
        f" ({plan.quarantined:,} of {plan.rows_read:,} rows quarantined, never sent).",
        f"Generator: {generator}",
        f"Store: {plan.store}",
        "",
    ]
    if plan.problem:
        lines[1:1] = [f"A run would stop before any call: {plan.problem}"]
    copies = plan.imported > 0  # the "to copy" column shows only when a run would import from a seed store
    header = ("batch", "products", "stored", *(("to copy",) if copies else ()), "to generate", "est. calls")
    header += ("est. cost",)

    def cells(name: str, batch: BatchPlan | None) -> tuple[str, ...]:
        source = batch or plan
        copied = (f"{source.imported:,}",) if copies else ()
        calls, cost = plan.calls(batch), _money(plan.cost_usd(batch))
        counts = (f"{source.products:,}", f"{source.stored:,}", *copied, f"{source.to_generate:,}")
        return (name, *counts, f"{calls:,}", cost)

    rows = [cells(b.partition, b) for b in plan.batches]
    total = cells("total", None)
    widths = [max(len(row[i]) for row in (header, *rows, total)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines += [line(header), *map(line, rows), line(total), ""]
    outdated = sum(b.outdated for b in plan.batches)
    fallback = sum(b.fallback for b in plan.batches)
    if outdated:
        lines.append(
            f"{outdated:,} stored images were made from another prompt, model, size or quality: redone."
        )
    if plan.retakes:
        lines.append(
            f"{_images_were(plan.retakes)} rejected (in review or by `catalog-images reject`): retaken, a new "
            "image each."
        )
    to_fallback = sum(b.to_fallback for b in plan.batches)
    if to_fallback:
        its = "its" if to_fallback == 1 else "their"
        lines.append(
            f"{_images_were(to_fallback)} rejected with {its} retakes used up: replaced by the offline card "
            "(no call)."
        )
    if fallback:
        lines.append(f"{fallback:,} stored images are offline fallback cards (kept; delete them to retry).")
    if plan.imported:
        lines.append(
            f"{plan.imported:,} images are copied from the seed store {plan.seed} (same fingerprint): no API call."
        )
    if plan.paid and plan.to_generate:
        most = plan.to_generate * plan.max_calls_per_product
        summary = (
            f"A full run would make about {plan.calls():,} API calls (at most {most:,} with every retry)"
        )
        summary += f", estimated cost {_money(plan.cost_usd())}"
        if plan.images_per_minute:
            minutes = math.ceil(plan.to_generate / plan.images_per_minute)
            summary += f", and take at least {minutes:,} min at {plan.images_per_minute:g} images/min"
        lines.append(summary + ".")
        lines.append(
            f"Through the Batch API (CATALOG_GENERATION_MODE=batch, done within 24 h): estimated cost "
            f"{_money(plan.batch_cost_usd())}; synchronously: {_money(plan.cost_usd())}."
        )
    elif plan.to_generate:
        lines.append(f"A full run would render {plan.to_generate:,} offline product cards.")
    elif plan.imported:
        lines.append("Nothing to generate: every product is stored or copied with its current fingerprint.")
    else:
        lines.append("Nothing to generate: every product is stored with its current fingerprint.")
    return "\n".join(lines)


def dry_run(catalog: str, partitions: Sequence[str] | None = None) -> tuple[str, int]:
    """(text, exit code) for `catalog-images dry-run`, with the resources the environment selects for a run
    (OPENAI_API_KEY, CATALOG_IMAGE_MODEL, CATALOG_S3_BUCKET ...). Exit code 2: a run could not start."""
    from catalog_assets.assets.images import ProductImagesConfig
    from catalog_assets.definitions import resources_for_environment

    resources, images_config = resources_for_environment(), ProductImagesConfig()
    try:
        with (
            resources["image_generator"].process_config_and_initialize_cm() as generator_resource,
            resources["store"].process_config_and_initialize_cm() as store_resource,
        ):
            store = store_resource.get_client()
            plan = plan_run(
                Path(catalog),
                store,
                generator_resource.get_client(),
                partitions=partitions,
                seed=seed_store(images_config.import_from_dir, store),
                max_retakes=images_config.max_retakes,
                after_retakes=images_config.after_retakes,
            )
    except (CatalogError, StoreError) as exc:
        return f"error: {exc}", 2
    return format_plan(plan), 2 if plan.problem else 0
