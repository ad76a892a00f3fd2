"""The linked catalog made search-ready by a real offline pipeline run: alt text that describes the stored
image, a 512-dim unit vector per product, the demo's s3_url_mapping, an index mapping and a bulk NDJSON that
validates against it; a rerun reuses every vector, a model change re-embeds, and the vector check fails
on a vector two products share."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence

import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection, EnvVar, materialize

from catalog_assets.checks import ALL_CHECKS, LINKED_VECTORS
from catalog_assets.checks.vectors import vector_problems
from catalog_assets.definitions import ALL_ASSETS, resources_for_environment
from catalog_assets.embeddings import EMBEDDING_DIMENSIONS, HASHING_MODEL
from catalog_assets.resources.embedder import (
    Embeddings,
    HashingTextEmbedder,
    HashingTextEmbedderResource,
    OpenAITextEmbedderResource,
)
from catalog_assets.resources.image_reviewer import OfflineImageReviewerResource, OpenAIImageReviewerResource
from catalog_assets.review import is_template_alt_text, offline_description
from catalog_assets.search_export import index_mapping, validate_bulk_ndjson
from catalog_assets_tests.conftest import write_catalog

PRODUCTS = 30
#: texts embedded, per embedder model label, across every counting embedder built in this process
EMBEDDED: Counter[str] = Counter()


class CountingEmbedder(HashingTextEmbedder):
    """The hashing embedder under a chosen model label, counting the texts it embeds."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.model = label

    def embed(self, texts: Sequence[str], *, attempt: int = 1) -> Embeddings:
        EMBEDDED[self.model] += len(texts)
        return super().embed(texts, attempt=attempt)


class CountingEmbedderResource(HashingTextEmbedderResource):
    label: str = HASHING_MODEL

    def get_client(self) -> CountingEmbedder:
        return CountingEmbedder(self.label)


def _use_embedder(pipeline, label: str) -> None:
    base = pipeline.resources
    pipeline.resources = lambda: {**base(), "text_embedder": CountingEmbedderResource(label=label)}


def _linked(pipeline) -> list[dict]:
    return json.loads(pipeline.store.get("catalog/linked_catalog.json"))


def _self_test_queries(result) -> int:
    """Names embedded by the linked_vectors check's retrieval self-test in this publish run."""
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "linked_vectors")
    return check.metadata["self_test_queries"].value


def _meta(result) -> dict:
    meta = result.asset_materializations_for_node("linked_catalog")[0].metadata
    return {k: v.value for k, v in meta.items()}


@pytest.fixture
def published(pipeline, sample_products):
    EMBEDDED.clear()
    _use_embedder(pipeline, HASHING_MODEL)
    products = sample_products[:PRODUCTS]
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", products), batch_size=10).success
    assert all(pipeline.images(p).success for p in pipeline.partitions())
    result = pipeline.publish()
    assert result.success
    return pipeline, products, result


def test_every_product_gets_a_unit_vector_and_an_alt_text_that_describes_its_image(published) -> None:
    pipeline, products, result = published
    linked = _linked(pipeline)
    assert [p["id"] for p in linked] == [p["id"] for p in products]
    for source, row in zip(products, linked, strict=True):
        for key, value in source.items():  # every input field kept
            if key != "image":
                assert row[key] == value, key
        image = row["image"]
        assert image["url"]
        assert not is_template_alt_text(image["alt_text"])
        assert image["alt_text"] == offline_description(source, "card")[0]  # the offline card it shows
        vector = image["vector_embedding"]
        assert len(vector) == EMBEDDING_DIMENSIONS and all(math.isfinite(v) for v in vector)
        assert abs(math.sqrt(math.fsum(v * v for v in vector)) - 1.0) < 1e-3
        assert image["embedding_model"] == HASHING_MODEL
    # the catalog's texts, and each product's name once for the linked_vectors check's retrieval self-test
    assert EMBEDDED[HASHING_MODEL] == PRODUCTS + _self_test_queries(result)
    meta = _meta(result)
    assert meta["vectors_embedded"] == PRODUCTS and meta["vectors_reused"] == 0
    assert meta["embedding_model"] == HASHING_MODEL and meta["bulk_documents"] == PRODUCTS
    table = {
        r["id"]: r for r in pq.read_table(pipeline.store_dir / "catalog/linked_catalog.parquet").to_pylist()
    }
    for row in linked:
        assert table[row["id"]]["image_vector_embedding"] == pytest.approx(row["image"]["vector_embedding"])
        assert table[row["id"]]["image_embedding_model"] == HASHING_MODEL


def test_the_exports_validate_and_name_every_product(published) -> None:
    pipeline, products, _ = published
    linked = _linked(pipeline)
    mapping = json.loads(pipeline.store.get("catalog/es_mapping.json"))
    assert mapping == index_mapping()
    bulk = pipeline.store_dir / "catalog/products_bulk.ndjson"
    validation = validate_bulk_ndjson(bulk, mapping)  # vectors required: every product has an image
    assert validation.ok, validation.problems
    assert validation.documents == PRODUCTS
    lines = bulk.read_text(encoding="utf-8").splitlines()
    assert [json.loads(a)["index"]["_id"] for a in lines[::2]] == [p["id"] for p in products]
    assert [json.loads(d) for d in lines[1::2]] == linked
    urls = json.loads(pipeline.store.get("catalog/s3_url_mapping.json"))
    assert urls == {"product_to_s3_url": {p["id"]: p["image"]["url"] for p in linked}}


def test_a_rerun_embeds_nothing_and_a_model_change_embeds_everything_again(published) -> None:
    pipeline, _, _ = published
    before, embedded = _linked(pipeline), EMBEDDED[HASHING_MODEL]
    rerun = pipeline.publish()
    assert rerun.success
    assert EMBEDDED[HASHING_MODEL] == embedded  # nothing embedded again; the self-test figure is kept too
    assert _meta(rerun)["vectors_embedded"] == 0 and _meta(rerun)["vectors_reused"] == PRODUCTS
    assert _linked(pipeline) == before

    _use_embedder(pipeline, "hashing-512-relabelled")
    changed = pipeline.publish()
    assert changed.success
    assert EMBEDDED["hashing-512-relabelled"] == PRODUCTS + _self_test_queries(changed)
    assert {p["image"]["embedding_model"] for p in _linked(pipeline)} == {"hashing-512-relabelled"}


def test_the_vector_check_fails_on_a_vector_two_products_share(published) -> None:
    pipeline, _, _ = published
    linked = _linked(pipeline)
    assert vector_problems(linked) == (PRODUCTS, [])
    linked[7]["image"]["vector_embedding"] = linked[3]["image"]["vector_embedding"]
    linked[9]["image"]["vector_embedding"] = [0.0] * EMBEDDING_DIMENSIONS
    linked[11]["image"]["vector_embedding"] = linked[11]["image"]["vector_embedding"][:100]
    pipeline.store.put_json("catalog/linked_catalog.json", linked)
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.checks_for_assets(
            *[a for a in ALL_ASSETS if a.key.path == ["linked_catalog"]]
        ),
        instance=pipeline.instance,
        resources=pipeline.resources(),
        raise_on_error=False,
    )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == LINKED_VECTORS]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    problems = evaluation.metadata["problems"].value
    assert f"same vector as {linked[3]['id']}" in problems and linked[7]["id"] in problems
    assert "all zeros" in problems and "100 values" in problems
    assert evaluation.metadata["bad_vectors"].value == 3


def test_the_environment_chooses_the_reviewer_and_the_embedder() -> None:
    offline = resources_for_environment({})
    assert type(offline["image_reviewer"]) is OfflineImageReviewerResource
    assert type(offline["text_embedder"]) is HashingTextEmbedderResource
    keyed = resources_for_environment(
        {"OPENAI_API_KEY": "sk-x", "CATALOG_REVIEW_MODEL": "r", "CATALOG_EMBEDDING_MODEL": "e"}
    )
    reviewer, embedder = keyed["image_reviewer"], keyed["text_embedder"]
    assert isinstance(reviewer, OpenAIImageReviewerResource)
    assert isinstance(embedder, OpenAITextEmbedderResource)
    # settings by name, read when a run starts: never the key itself in the definitions
    assert reviewer.api_key == EnvVar("OPENAI_API_KEY") and embedder.api_key == EnvVar("OPENAI_API_KEY")
    assert reviewer.model == EnvVar("CATALOG_REVIEW_MODEL")
    assert embedder.model == EnvVar("CATALOG_EMBEDDING_MODEL")
    defaults = resources_for_environment({"OPENAI_API_KEY": "sk-x"})
    assert defaults["text_embedder"].model == "text-embedding-3-small"
