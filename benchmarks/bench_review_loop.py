"""What the review step adds per batch: `BatchReviewer` over stored images with the offline reviewer (embedded
default) and with the vision-model reviewer against the stand-in (real SDK over HTTP, a separate process),
median of rounds; then the rerun, in which every review is reused. Images are stand-in-like photos (not
offline cards, which the offline reviewer always takes), 512 px JPEGs.

    python benchmarks/bench_review_loop.py [--images 300] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from catalog_assets import imaging
from catalog_assets.outcomes import image_key
from catalog_assets.resources.image_reviewer import OfflineImageReviewer, OpenAIImageReviewer
from catalog_assets.resources.store import LocalImageStore
from catalog_assets.reviewing import BatchReviewer
from catalog_assets.standin import StandInProcess

KEY = "sk-bench-review"


def _store(root: Path, n: int) -> tuple[LocalImageStore, list[dict], dict[str, dict]]:
    store = LocalImageStore(root)
    rng = random.Random(7)
    products, outcomes = [], {}
    for i in range(n):
        pid = f"PROD-{i + 1:06d}"
        image = Image.new("RGB", (512, 512), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((100, 100, 412, 412), fill=colour)
        put = store.put(image_key(pid), imaging.encode_jpeg(image), content_type="image/jpeg")
        products.append({"id": pid, "name": f"Product {i}", "category": "Home", "attributes": {}})
        outcomes[pid] = {"key": put.object.key, "sha256": put.object.sha256, "model": "gpt-image-2"}
    return store, products, outcomes


def _time(store, reviewer, products, outcomes, previous, concurrency) -> tuple[float, BatchReviewer, dict]:
    batch = BatchReviewer(reviewer=reviewer, store=store, concurrency=concurrency)
    start = time.perf_counter()
    rows = batch.review(products, outcomes, previous)
    return time.perf_counter() - start, batch, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, StandInProcess(["--api-key", KEY]) as standin:
        store, products, outcomes = _store(Path(tmp) / "store", args.images)
        vision = OpenAIImageReviewer(api_key=KEY, base_url=standin.base_url)
        for label, reviewer in (("offline reviewer", OfflineImageReviewer()), ("stand-in vision", vision)):
            times, rows, batch = [], {}, None
            for _ in range(args.rounds):
                seconds, batch, rows = _time(store, reviewer, products, outcomes, {}, args.concurrency)
                times.append(seconds)
            rerun, again, _ = _time(store, reviewer, products, outcomes, rows, args.concurrency)
            median = statistics.median(times)
            assert batch is not None
            cost = batch.stats.metadata()["review_cost_per_image_usd"]
            print(
                f"{label}: {args.images} images in {median:.2f} s median of {args.rounds} "
                f"({median / args.images * 100:.2f} s per 100 images; {batch.stats.calls} calls, "
                f"${cost:.6f} per paid review); rerun {rerun:.3f} s, {again.stats.reused} reused, "
                f"{again.stats.calls} calls"
            )
        vision.close()


if __name__ == "__main__":
    main()
