"""Image and text queries: bad query files refused in one line, the offline description (OCR + colours) of
real product cards, text search, and the retrieval figures on the bundled catalog — offline on offline
cards, and through the stand-in's images, reviews and embeddings over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import openai
import pytest

from catalog_assets.cards import OFFLINE_MODEL, render_product_card
from catalog_assets.catalog import load_catalog
from catalog_assets.embeddings import HASHING_MODEL, VectorIndex, as_json_floats, embedding_text
from catalog_assets.image_query import (
    MAX_QUERY_IMAGE_BYTES,
    QueryInputError,
    check_query_text,
    format_hits,
    query_embedding_text,
    read_query_image,
    search_image,
    search_text,
)
from catalog_assets.imaging import encode_jpeg
from catalog_assets.prompts import build_prompt
from catalog_assets.resources.embedder import HashingTextEmbedder, OpenAITextEmbedder
from catalog_assets.resources.image_reviewer import OfflineImageReviewer, OpenAIImageReviewer
from catalog_assets.review import offline_description
from catalog_assets.standin import StandInConfig, StandInServer
from catalog_assets.util import human_bytes

KEY = "sk-standin-query-test-0123456789abcdef"
BASE = "https://catalog-images.example.com/images"
#: (first, top 5) of 100 sampled cards an offline image query must reach, per card renderer
MIN_RECALL = {"offline-card-v1": (70, 80)}
SAMPLE_STEP = 50  # every 50th of the 5,000 bundled products: 100 sampled cards


@pytest.fixture(scope="module")
def bundled() -> list[dict]:
    return load_catalog("data/catalog.json").products


def linked_rows(products: list[dict], texts: list[str], vectors: np.ndarray) -> list[dict]:
    rows = []
    for product, vector in zip(products, vectors, strict=True):
        image = {"url": f"{BASE}/{product['id']}.jpg", "vector_embedding": as_json_floats(vector)}
        rows.append({**product, "image": image})
    return rows


@pytest.fixture(scope="module")
def offline_index(bundled) -> VectorIndex:
    """The catalog's vectors as the embedded default makes them: offline review of each product's card
    (caption + alt text from its fields) plus its name, hashed."""
    texts = []
    for product in bundled:
        alt, caption = offline_description(product, "card")
        texts.append(embedding_text(caption=caption, alt_text=alt, name=product["name"]))
    vectors = HashingTextEmbedder().embed(texts).vectors
    return VectorIndex.from_rows(linked_rows(bundled, texts, vectors), model=HASHING_MODEL)


# -- bad query input -------------------------------------------------------------------------------------


def _missing(tmp: Path) -> Path:
    return tmp / "nope.jpg"


def _directory(tmp: Path) -> Path:
    (tmp / "photos").mkdir()
    return tmp / "photos"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.jpg").write_bytes(b"")
    return tmp / "empty.jpg"


def _huge(tmp: Path) -> Path:
    path = tmp / "huge.jpg"
    with path.open("wb") as out:  # sparse: 50 MB on paper, nothing written
        out.truncate(50_000_000)
    return path


def _text(tmp: Path) -> Path:
    (tmp / "notes.jpg").write_text("this is not a picture\n")
    return tmp / "notes.jpg"


def _truncated(tmp: Path) -> Path:
    (tmp / "cut.jpg").write_bytes(encode_jpeg(render_product_card({"id": "P1", "name": "Mug"}, 256))[:400])
    return tmp / "cut.jpg"


@pytest.mark.parametrize(
    ("make", "message"),
    [(_missing, "nope.jpg: no such file"),
     (_directory, "photos: is a directory, expected an image file"),
     (_empty, "empty.jpg: the file is empty (0 bytes)"),
     (_huge, f"huge.jpg: the file is {human_bytes(50_000_000)}, larger than the {human_bytes(MAX_QUERY_IMAGE_BYTES)} limit"),
     (_text, "notes.jpg: not an image Pillow can read"),
     (_truncated, "cut.jpg: not an image Pillow can read")],
)  # fmt: skip
def test_bad_query_files_are_refused_in_one_line(tmp_path: Path, make, message: str, offline_index) -> None:
    path = make(tmp_path)
    with pytest.raises(QueryInputError) as caught:
        search_image(path, offline_index, HashingTextEmbedder(), OfflineImageReviewer())
    text = str(caught.value)
    assert message in text and "\n" not in text and "Traceback" not in text
    error = caught.value  # no chained exception for the CLI to print
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_the_size_cap_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(encode_jpeg(render_product_card({"id": "P1", "name": "Mug"}, 256)))
    assert read_query_image(path).size == (256, 256)
    with pytest.raises(QueryInputError, match=f"larger than the {human_bytes(100)} limit"):
        read_query_image(path, max_bytes=100)
    assert MAX_QUERY_IMAGE_BYTES < 50_000_000


@pytest.mark.parametrize(
    ("text", "message"), [("   ", "the search text is empty"), ("x" * 1001, "at most 1000")]
)
def test_bad_query_texts(text: str, message: str) -> None:
    with pytest.raises(QueryInputError, match=message):
        check_query_text(text)


# -- queries ---------------------------------------------------------------------------------------------


def test_text_search_finds_blue_hand_soap(bundled, offline_index) -> None:
    found = search_text("blue hand soap", offline_index, HashingTextEmbedder(), top=5)
    assert len(found) == 5 and [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    by_id = {p["id"]: p for p in bundled}
    assert all("hand soap" in h.name.lower() for h in found), [h.name for h in found]
    # A hashing embedding has no notion of word importance: the colour sways the ranking, it does not rule it.
    assert sum("blue" in by_id[h.id]["attributes"]["color"].lower() for h in found) >= 3
    assert found[0].image_url == f"{BASE}/{found[0].id}.jpg"
    lines = format_hits(found).splitlines()
    assert (
        len(lines) == 5
        and lines[0].split()[:2] == ["1", found[0].id]
        and lines[0].endswith(found[0].image_url)
    )


def test_search_image_on_a_stored_card_returns_its_product_first(
    bundled, offline_index, tmp_path: Path
) -> None:
    product = bundled[0]
    path = tmp_path / f"{product['id']}.jpg"
    path.write_bytes(encode_jpeg(render_product_card(product, 1024)))
    description, found = search_image(
        path, offline_index, HashingTextEmbedder(), OfflineImageReviewer(), top=3
    )
    assert description.offline and "Wireless Earbuds" in description.visible_text  # read by tesseract
    assert description.dominant_colours
    assert found[0].id == product["id"] and len(found) == 3


def recall_line(label: str, first: int, top5: int, total: int) -> str:
    return (
        f"{label}: first {first}/{total} ({first / total:.0%}), recall@5 {top5}/{total} ({top5 / total:.0%})"
    )


@pytest.mark.slow
def test_offline_retrieval_figures_on_offline_cards(bundled, offline_index, tmp_path: Path) -> None:
    """The self-test figures: a stored card of a product, described offline (OCR + colours), finds that
    product; and each product's own name query finds it within the top 5."""
    embedder, reviewer = HashingTextEmbedder(), OfflineImageReviewer()
    first = top5 = 0
    sample = bundled[::SAMPLE_STEP]
    for product in sample:
        path = tmp_path / f"{product['id']}.jpg"
        path.write_bytes(encode_jpeg(render_product_card(product, 1024)))  # as the store holds it
        _, found = search_image(path, offline_index, embedder, reviewer, top=5)
        ids = [hit.id for hit in found]
        first += ids[0] == product["id"]
        top5 += product["id"] in ids
    names = embedder.embed([p["name"] for p in bundled]).vectors
    name_hits = sum(
        product["id"] in {pid for pid, _ in offline_index.search(vector, 5)}
        for product, vector in zip(bundled, names, strict=True)
    )
    print(recall_line(f"offline image query ({OFFLINE_MODEL} cards)", first, top5, len(sample)))
    print(f"name query recall@5: {name_hits}/{len(bundled)} ({name_hits / len(bundled):.1%})")
    # Measured (tesseract --psm 11, colours included, these 100 cards): offline-card-v1 78/100 first and
    # 89/100 in the top 5 (its dark discs hide some names from OCR); offline-card-v2, whose text sits in a
    # white panel, 94/100 and 100/100. Name queries: 5000/5000.
    minimum_first, minimum_top5 = MIN_RECALL.get(OFFLINE_MODEL, (90, 97))
    assert first >= minimum_first and top5 >= minimum_top5
    assert name_hits >= 0.99 * len(bundled)


@pytest.mark.slow
def test_search_image_through_the_stand_in_over_http(bundled, tmp_path: Path) -> None:
    """API mode: the stand-in draws each product's image, its vision model reviews it, its embeddings
    embed caption + alt text + name; a stored image described by the same model finds its product."""
    products = bundled[:200:2]  # 100 products
    with StandInServer(StandInConfig(api_key=KEY)) as standin:
        client = openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0)
        reviewer = OpenAIImageReviewer(api_key=KEY, base_url=standin.base_url)
        embedder = OpenAITextEmbedder(api_key=KEY, base_url=standin.base_url)
        paths, texts = [], []
        for product in products:
            generated = client.images.generate(
                model="gpt-image-2", prompt=build_prompt(product), output_format="jpeg"
            )
            path = tmp_path / f"{product['id']}.jpg"
            path.write_bytes(base64.b64decode(generated.data[0].b64_json))
            review = reviewer.review(product=product, image=path.read_bytes(), source_model="gpt-image-2")
            paths.append(path)
            texts.append(
                embedding_text(caption=review.caption, alt_text=review.alt_text, name=product["name"])
            )
        catalog = embedder.embed(texts)
        index = VectorIndex.from_rows(linked_rows(products, texts, catalog.vectors), model=catalog.model)
        first = top5 = 0
        for product, path in zip(products, paths, strict=True):
            description, found = search_image(path, index, embedder, reviewer, top=5)
            assert not description.offline and query_embedding_text(description)
            ids = [hit.id for hit in found]
            first += ids[0] == product["id"]
            top5 += product["id"] in ids
        names = embedder.embed([p["name"] for p in products]).vectors
        name_hits = sum(
            product["id"] in {pid for pid, _ in index.search(vector, 5)}
            for product, vector in zip(products, names, strict=True)
        )
        stats = standin.stats()
    print(recall_line("stand-in image query (gpt-image-2 images)", first, top5, len(products)))
    print(f"stand-in name query recall@5: {name_hits}/{len(products)} ({name_hits / len(products):.0%})")
    assert stats["reviews"]["requests"] == 2 * len(products)  # one review, one query description each
    assert first >= 90 and top5 >= 95
    assert name_hits >= 0.95 * len(products)
