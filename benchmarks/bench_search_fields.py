"""What the search fields add to publishing the bundled catalog: linked_catalog's own work (link, JSON and
Parquet written) without and with alt text + hashing vectors + the three search exports, median of rounds,
plus the rerun that reuses every vector. Manifest rows are made up (offline cards under store URLs), so no
image is generated.

    python benchmarks/bench_search_fields.py [--products 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from catalog_assets import state
from catalog_assets.assets.manifest import _parquet_row, _put_linked_json, _write_search_exports
from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.manifest import add_search_fields, link_catalog, previous_vectors, to_parquet
from catalog_assets.resources.embedder import HashingTextEmbedder
from catalog_assets.resources.store import PARQUET, LocalImageStore

CATALOG = Path(__file__).resolve().parents[1] / "data" / "catalog.json"


def _manifest(store: LocalImageStore, products: list[dict]) -> dict[str, dict]:
    return {
        p["id"]: {
            "url": store.url(f"images/{p['id']}.jpg"),
            "key": f"images/{p['id']}.jpg",
            "thumbnail_key": f"thumbnails/{p['id']}.jpg",
            "thumbnail_url": store.url(f"thumbnails/{p['id']}.jpg"),
            "sha256": "0" * 64,
            "source": "generated",
            "model": OFFLINE_MODEL,
        }
        for p in products
    }


def _publish(
    store: LocalImageStore, products: list[dict], manifest: dict, search: bool
) -> tuple[float, dict]:
    started = time.perf_counter()
    linked = link_catalog(products, manifest)
    stats = {}
    if search:
        previous = previous_vectors(store.get_json(state.LINKED_JSON_KEY, default=None))
        stats = add_search_fields(linked, manifest, HashingTextEmbedder(), previous).__dict__
    if search:
        _put_linked_json(store, linked)
    else:  # as linked_catalog wrote it before the search fields
        store.put_json(state.LINKED_JSON_KEY, linked)
    store.put(state.LINKED_PARQUET_KEY, to_parquet([_parquet_row(p) for p in linked]), content_type=PARQUET)
    if search:
        _write_search_exports(store, linked)
    return time.perf_counter() - started, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    products = json.loads(CATALOG.read_text())[: args.products]
    timings: dict[str, list[float]] = {"without search fields": [], "with search fields": [], "rerun": []}
    sizes = {}
    with tempfile.TemporaryDirectory() as warm:  # lazy imports (pyarrow, numpy) outside the timings
        store = LocalImageStore(warm)
        _publish(store, products[:20], _manifest(store, products[:20]), True)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as full:
            base, store = LocalImageStore(plain), LocalImageStore(full)
            timings["without search fields"].append(
                _publish(base, products, _manifest(base, products), False)[0]
            )
            manifest = _manifest(store, products)
            seconds, first = _publish(store, products, manifest, True)
            timings["with search fields"].append(seconds)
            seconds, again = _publish(store, products, manifest, True)
            timings["rerun"].append(seconds)
            assert first["embedded"] == len(products) and again["embedded"] == 0, (first, again)
            sizes = {o.key: o.size for o in store.list("catalog/")}
    print(f"{len(products)} products, median of {args.rounds}:")
    for name, values in timings.items():
        print(f"  {name:>22}: {statistics.median(values):6.2f} s")
    added = statistics.median(timings["with search fields"]) - statistics.median(
        timings["without search fields"]
    )
    print(f"  added by the search fields: {added:.2f} s ({added / len(products) * 1000:.2f} ms per product)")
    for key, size in sorted(sizes.items()):
        print(f"  {key}: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
