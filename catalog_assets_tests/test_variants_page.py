"""A storefront page built from the linked catalog (`<picture>` with a `srcset` per type, plus one `<img>` per
variant URL), served over http from the local store, loads every variant in headless Chromium."""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from catalog_assets_tests.conftest import PROJECT, Pipeline, write_catalog
from catalog_assets_tests.products import make_products

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT / "catalog_assets_tests" / "artifacts"


class _StoreHandler(SimpleHTTPRequestHandler):
    # the content types the store records (older Pythons guess AVIF as application/octet-stream)
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".avif": "image/avif", ".webp": "image/webp"}

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture
def served_store(pipeline: Pipeline) -> Iterator[str]:
    pipeline.store_dir.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_StoreHandler, directory=str(pipeline.store_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def storefront(linked: list[dict]) -> str:
    """A product grid as a shop writes it from the linked catalog, and a row of every variant at its size."""
    cards, every = [], []
    for product in linked:
        image = product["image"]
        sources = "".join(
            f'<source type="{t}" srcset="{html.escape(s)}" sizes="200px">' for t, s in image["srcset"].items()
        )
        cards.append(
            f'<figure><picture>{sources}<img class="main" src="{html.escape(image["url"])}" width="200" '
            f'height="200" alt="{html.escape(image["alt_text"])}"></picture>'
            f"<figcaption>{html.escape(product['name'])}</figcaption></figure>"
        )
        every += [
            f'<img class="variant" src="{html.escape(v["url"])}" data-width="{v["width"]}" '
            f'title="{v["type"]} {v["width"]}" height="80" alt="">'
            for v in image["variants"]
        ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Variants</title><style>"
        "body{font-family:sans-serif;margin:16px} .grid{display:flex;gap:12px;flex-wrap:wrap} "
        "figure{margin:0;width:200px} .all{display:flex;gap:4px;flex-wrap:wrap;margin-top:12px}</style></head>"
        f"<body><h1>Products</h1><div class='grid'>{''.join(cards)}</div>"
        f"<h2>Every variant</h2><div class='all'>{''.join(every)}</div></body></html>"
    )


@pytest.mark.browser
def test_a_storefront_page_loads_every_variant_from_the_store(pipeline: Pipeline, served_store: str) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(4))).success
    (partition,) = pipeline.partitions()
    assert pipeline.images(partition, {"variant_formats": ["webp", "avif"]}).success
    assert pipeline.publish().success
    linked = pipeline.store.get_json("catalog/linked_catalog.json")
    variant_urls = [v["url"] for p in linked for v in p["image"]["variants"]]
    assert len(variant_urls) == 4 * 4  # WebP and AVIF at 320 and 640 px
    (pipeline.store_dir / "storefront.html").write_text(storefront(linked))

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            responses: dict[str, tuple[int, str]] = {}
            page.on(
                "response",
                lambda r: responses.__setitem__(r.url, (r.status, r.headers.get("content-type", ""))),
            )
            page.goto(served_store + "storefront.html", wait_until="load")
            page.wait_for_function("[...document.images].every(i => i.complete)", timeout=60_000)
            images = page.eval_on_selector_all(
                "img",
                "els => els.map(i => ({cls: i.className, src: i.getAttribute('src'), current: i.currentSrc, "
                "natural: i.naturalWidth, want: Number(i.dataset.width || 0)}))",
            )
            page.screenshot(path=str(ARTIFACTS / "variants_storefront.png"), full_page=True)
        finally:
            browser.close()

    broken = [i["src"] for i in images if i["natural"] <= 0]
    assert broken == []
    shown = [i for i in images if i["cls"] == "variant"]
    assert [i["src"] for i in shown] == variant_urls
    assert all(i["natural"] == i["want"] for i in shown)  # each variant decoded at its own width
    for url in variant_urls:
        status, content_type = responses[served_store + url]
        assert status == 200 and content_type == ("image/avif" if url.endswith(".avif") else "image/webp")
    # the grid's <picture> chose an AVIF source from the srcset, not the JPEG fallback
    mains = [i for i in images if i["cls"] == "main"]
    assert len(mains) == 4 and all(i["current"].endswith(".avif") for i in mains)
