"""`catalog-images reject` and `unreject`: a person's verdict on a product's stored image, recorded in the
store (`state/rejections.json`) that the environment selects. The next `product_images` run of the
product's batch (a run, a backfill or the failed-batch retry schedule) retakes a rejected image like one the
reviewer rejected, within the same `max_retakes`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from catalog_assets import state
from catalog_assets.catalog import partition_key
from catalog_assets.errors import StoreError
from catalog_assets.outcomes import image_key
from catalog_assets.prompts import clean
from catalog_assets.resources.store import ImageStore

#: exit status of a command that cannot be done as asked (unknown product, nothing to unreject)
BAD_INPUT = 2
REASON_MAX = 200


class RejectionError(ValueError):
    """The verdict cannot be recorded: one line that says why."""


def _known_product(store: ImageStore, product_id: str) -> int:
    assignment = state.read_assignment(store)
    if not assignment:
        raise RejectionError(f"no catalog in the store {store.location}: run `catalog-images run` first")
    if product_id not in assignment:
        raise RejectionError(f"unknown product id {product_id!r}: not in the catalog of {store.location}")
    return assignment[product_id]


def reject(store: ImageStore, product_id: str, reason: str) -> dict[str, Any]:
    """Record that the product's stored image is rejected (`reason` goes into the retake prompt as a
    quoted note). Returns the record."""
    _known_product(store, product_id)
    head = store.head(image_key(product_id))
    if head is None:
        raise RejectionError(f"{product_id} has no stored image to reject yet")
    note = clean(reason, REASON_MAX)
    if not note:
        raise RejectionError("--reason is empty: say what is wrong with the image (it guides the retake)")
    record = {
        "reason": note,
        "image_sha256": head.sha256,
        "rejected_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    rejections = state.read_rejections(store)
    rejections[product_id] = record
    state.write_rejections(store, rejections)
    return record


def unreject(store: ImageStore, product_id: str) -> dict[str, Any]:
    """Withdraw a person's rejection (before the retake is made; a retake already stored stays)."""
    _known_product(store, product_id)
    rejections = state.read_rejections(store)
    record = rejections.pop(product_id, None)
    if record is None:
        raise RejectionError(f"{product_id} is not rejected")
    state.write_rejections(store, rejections)
    return record


def run_rejection(
    product_id: str,
    reason: str | None,
    *,
    withdraw: bool = False,
    env_resources: dict[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The CLI command: one line on stdout when done, one on stderr and exit 2 when it cannot be."""
    from catalog_assets.definitions import resources_for_environment

    out, err = out or sys.stdout, err or sys.stderr
    resources = env_resources or resources_for_environment()
    try:
        with resources["store"].process_config_and_initialize_cm() as resource:
            store = resource.get_client()
            if withdraw:
                unreject(store, product_id)
                print(f"{product_id}: rejection withdrawn; its stored image stays as it is", file=out)
            else:
                reject(store, product_id, reason or "")
                batch = partition_key(_known_product(store, product_id))
                print(f"{product_id}: image rejected; the next run of {batch} retakes it", file=out)
    except (RejectionError, StoreError) as exc:
        print("error: " + " ".join(str(exc).split()), file=err)
        return BAD_INPUT
    return 0
