"""The local store as a web server and a browser see it: file modes from the umask, URLs relative to the
store root (or under CATALOG_PUBLIC_BASE_URL) that load over http, and keys back from those URLs."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import asset, materialize

from catalog_assets.definitions import resources_for_environment
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.store import JPEG, LocalImageStore, LocalImageStoreResource
from catalog_assets_tests.conftest import write_catalog
from catalog_assets_tests.products import make_products

CHROMIUM = "/usr/bin/chromium"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass


@pytest.fixture
def serve() -> Iterator:
    """Starts `http.server` over a directory in a thread; returns its base URL (ending in '/')."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)], ids=["022", "027"]
)
def test_stored_files_get_the_umasks_mode(tmp_path, umask: int, file_mode: int, dir_mode: int) -> None:
    store = LocalImageStore(tmp_path / "store")
    old = os.umask(umask)
    try:
        store.put("images/P-1.jpg", b"\xff\xd8\xffjpeg", content_type=JPEG)
        store.put_json("state/batch_assignment.json", {"assignment": {}})
    finally:
        os.umask(old)
    for path in (
        tmp_path / "store" / "images" / "P-1.jpg",
        tmp_path / "store" / ".meta" / "images" / "P-1.jpg.json",
        tmp_path / "store" / "state" / "batch_assignment.json",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    for path in (tmp_path / "store" / "images", tmp_path / "store" / ".meta" / "images"):
        assert stat.S_IMODE(path.stat().st_mode) == dir_mode, path


def test_urls_are_store_relative_and_map_back_to_keys(tmp_path) -> None:
    store = LocalImageStore(tmp_path / "store")
    assert store.url("images/PROD-000001.jpg") == "images/PROD-000001.jpg"
    assert store.url("thumbnails/A B.jpg".replace(" ", "_")) == "thumbnails/A_B.jpg"
    assert store.key_for_url("images/PROD-000001.jpg") == "images/PROD-000001.jpg"
    assert store.key_for_url("./images/PROD-000001.jpg?v=2#x") == "images/PROD-000001.jpg"
    for foreign in (
        "/images/PROD-000001.jpg",
        "http://elsewhere/images/PROD-000001.jpg",
        (tmp_path / "store" / "images" / "PROD-000001.jpg").as_uri(),
        "../images/PROD-000001.jpg",
        "",
    ):
        assert store.key_for_url(foreign) is None, foreign
    # the folder moves: the URL still names the same object
    assert LocalImageStore(tmp_path / "moved").url("images/PROD-000001.jpg") == "images/PROD-000001.jpg"
    # a file path for people (metadata, logs), never as a URL
    assert store.locate("reports/r.md") == str(tmp_path / "store" / "reports" / "r.md")


def test_base_url_form_maps_back_to_keys(tmp_path) -> None:
    store = LocalImageStore(tmp_path / "store", public_base_url="http://localhost:8000/")
    url = store.url("images/PROD-000001.jpg")
    assert url == "http://localhost:8000/images/PROD-000001.jpg"
    assert store.key_for_url(url) == "images/PROD-000001.jpg"
    assert store.key_for_url(url + "?cache=1") == "images/PROD-000001.jpg"
    assert store.key_for_url("images/PROD-000001.jpg") == "images/PROD-000001.jpg"
    assert store.key_for_url("http://localhost:8001/images/PROD-000001.jpg") is None
    assert store.locate("reports/r.md") == "http://localhost:8000/reports/r.md"


def test_public_base_url_setting_reaches_the_local_store(tmp_path, monkeypatch) -> None:
    env = {"CATALOG_STORE_DIR": str(tmp_path / "s"), "CATALOG_PUBLIC_BASE_URL": "http://localhost:8000/"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    @asset
    def urls(store: LocalImageStoreResource) -> list[str]:
        client = store.get_client()
        return [client.location, client.url("images/P-1.jpg")]

    for settings, expected in ((env, "http://localhost:8000/images/P-1.jpg"), ({}, "images/P-1.jpg")):
        resource = resources_for_environment(settings)["store"]
        assert isinstance(resource, LocalImageStoreResource)
        result = materialize([urls], resources={"store": resource})
        assert result.success
        assert result.output_for_node("urls")[1] == expected
    assert result.output_for_node("urls")[0].endswith("data/store")


def _publish(pipeline, count: int = 6, base_url: str | None = None) -> tuple[list[dict], dict]:
    if base_url:
        pipeline.resources = lambda: {
            "image_generator": pipeline.generator,
            "store": LocalImageStoreResource(root=str(pipeline.store_dir), public_base_url=base_url),
            "coordination": LocalCoordinationResource(lock_dir=str(pipeline.root / "locks")),
        }
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(count))).success
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    assert pipeline.publish().success
    linked = json.loads(pipeline.store.get("catalog/linked_catalog.json"))
    manifest = json.loads(pipeline.store.get("manifests/latest.json"))
    return linked, {row["product_id"]: row for row in manifest["rows"]}


def _assert_served(linked: list[dict], manifest: dict, base: str, store: LocalImageStore) -> None:
    for product in linked:
        image, row = product["image"], manifest[product["id"]]
        for url, key in ((image["url"], row["key"]), (image["thumbnail_url"], row["thumbnail_key"])):
            assert store.key_for_url(url) == key
            body = _fetch(urllib.request.urljoin(base, url))
            assert body[:3] == b"\xff\xd8\xff"
            assert hashlib.sha256(body).digest() == hashlib.sha256(store.get(key)).digest()
        assert hashlib.sha256(_fetch(urllib.request.urljoin(base, image["url"]))).hexdigest() == row["sha256"]


def test_linked_catalog_urls_load_over_http_next_to_the_store(pipeline, serve) -> None:
    linked, manifest = _publish(pipeline)
    assert linked and all(not p["image"]["url"].startswith(("file:", "/")) for p in linked)
    assert {p["image"]["url"] for p in linked} == {f"images/{p['id']}.jpg" for p in linked}
    assert {p["image"]["thumbnail_url"] for p in linked} == {f"thumbnails/{p['id']}.jpg" for p in linked}
    base = serve(pipeline.store_dir)
    _assert_served(linked, manifest, base, pipeline.store)


def test_public_base_url_gives_absolute_urls_that_load(pipeline, serve) -> None:
    pipeline.store_dir.mkdir()
    base = serve(pipeline.store_dir)
    linked, manifest = _publish(pipeline, base_url=base)
    for product in linked:
        assert product["image"]["url"] == f"{base}images/{product['id']}.jpg"
        assert product["image"]["thumbnail_url"] == f"{base}thumbnails/{product['id']}.jpg"
    # absolute URLs: nothing to resolve them against
    _assert_served(linked, manifest, "http://unused.invalid/", LocalImageStore(pipeline.store_dir, base))


_PAGE = """<!doctype html>
<html><body>
{images}
<pre id="result">pending</pre>
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.querySelectorAll("img")];
  document.getElementById("result").textContent = JSON.stringify(
    imgs.map((img) => [img.getAttribute("src"), img.complete, img.naturalWidth]));
}});
</script>
</body></html>
"""


@pytest.mark.browser
def test_a_page_next_to_the_store_shows_every_image(pipeline, serve) -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    linked, _ = _publish(pipeline)
    srcs = [p["image"][field] for p in linked for field in ("url", "thumbnail_url")]
    tags = "\n".join(f'<img src="{src}" alt="">' for src in srcs)
    (pipeline.store_dir / "gallery.html").write_text(_PAGE.format(images=tags))
    base = serve(pipeline.store_dir)
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={pipeline.root / 'chromium-profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{base}gallery.html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    start = dom.index('<pre id="result">') + len('<pre id="result">')
    shown = json.loads(dom[start : dom.index("</pre>", start)])
    assert [src for src, _, _ in shown] == srcs
    assert [src for src, complete, width in shown if not (complete and width > 0)] == []
    assert {width for _, _, width in shown} >= {1024}
