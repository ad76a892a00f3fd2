"""Offline product cards: mean render time per card, and the closest pair of cards by the near-duplicate
check's difference hash over the bundled catalog (it must stay above the check's threshold).

    python benchmarks/bench_cards.py [--cards 200] [--hash-all]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from catalog_assets import imaging
from catalog_assets.cards import render_product_card
from catalog_assets.checks import DHASH_SIZE, CheckThresholds

CATALOG = Path(__file__).resolve().parents[1] / "data" / "catalog.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=200, help="cards rendered per timing round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hash-all", action="store_true", help="hash every product's card (5,000: minutes)")
    args = parser.parse_args()
    rows = json.loads(CATALOG.read_text())
    step = max(1, len(rows) // args.cards)
    sample = rows[::step][: args.cards]
    render_product_card(sample[0])
    wall, cpu = [], []
    for _ in range(args.rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        for row in sample:
            render_product_card(row)
        wall.append((time.perf_counter() - start) / len(sample) * 1000)
        cpu.append((time.process_time() - start_cpu) / len(sample) * 1000)
    # CPU time is the figure to compare on a shared machine; wall time includes waiting for a core
    print(
        f"render: {len(sample)} cards x {args.rounds} rounds, median {statistics.median(cpu):.2f} ms CPU "
        f"({statistics.median(wall):.2f} ms wall) per card"
    )
    if args.hash_all:
        hashes = [imaging.dhash(render_product_card(r), DHASH_SIZE) for r in rows]
        words = np.array(
            [
                [(h >> (64 * k)) & ((1 << 64) - 1) for k in range(DHASH_SIZE * DHASH_SIZE // 64)]
                for h in hashes
            ],
            dtype=np.uint64,
        )
        closest, pair = 1 << 30, None
        for i in range(len(words) - 1):
            diff = np.bitwise_xor(words[i + 1 :], words[i])
            bits = np.unpackbits(diff.view(np.uint8), axis=1).sum(axis=1)
            j = int(bits.argmin())
            if bits[j] < closest:
                closest, pair = int(bits[j]), (rows[i]["id"], rows[i + 1 + j]["id"])
        threshold = CheckThresholds().near_duplicate_max_bits
        print(
            f"dhash: {len(rows)} cards, closest pair {closest} bits apart {pair} (near-duplicate at <= {threshold})"
        )


if __name__ == "__main__":
    main()
