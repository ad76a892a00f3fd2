"""Image vectors: the offline hashing embedding, vector checks, cosine ranking, and the OpenAI embedder
through the real `openai` SDK against the stand-in's `/v1/embeddings` over HTTP."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catalog_assets.embeddings import (
    EMBEDDING_DIMENSIONS,
    HASHING_MODEL,
    EmbeddingError,
    VectorIndex,
    as_json_floats,
    embedding_text,
    hashing_embedding,
    normalise,
    rank,
    text_fingerprint,
    vector_problem,
)
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.resources.embedder import (
    HashingTextEmbedderResource,
    OpenAITextEmbedder,
    OpenAITextEmbedderResource,
)
from catalog_assets.standin import StandInServer
from catalog_assets_tests.support import standin_server_fixtures

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-standin-embed-test-0123456789abcdef"


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_hashing_embedding_is_a_deterministic_512_dim_unit_vector() -> None:
    vector = hashing_embedding("Blue hand soap, 250 ml")
    assert vector.shape == (EMBEDDING_DIMENSIONS,) and vector.dtype == np.float32
    assert math.isclose(float(np.linalg.norm(vector)), 1.0, abs_tol=1e-6)
    assert np.array_equal(vector, hashing_embedding("Blue hand soap, 250 ml"))
    # Another process (another hash seed) makes the very same vector: no Python hash() inside.
    code = "from catalog_assets.embeddings import hashing_embedding as h; print(list(h('Blue hand soap, 250 ml')[:8]))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)})  # fmt: skip
    assert other.stdout.strip() == str(list(vector[:8]))


def test_similar_texts_are_closer() -> None:
    soap, refill, chair = (hashing_embedding(t) for t in
                           ("blue hand soap, 250 ml", "Blue Hand Soap refill, 500 ml", "black leather office chair"))  # fmt: skip
    assert cos(soap, refill) > cos(soap, chair) + 0.3
    # character trigrams: an OCR misread or a plural still lands near
    earbuds = hashing_embedding("Wireless Earbuds")
    assert (
        cos(earbuds, hashing_embedding("Wire1ess Earbud"))
        > cos(earbuds, hashing_embedding("Office Chair")) + 0.1
    )
    assert cos(earbuds, hashing_embedding("Wire1ess Earbuds")) > 0.4
    assert cos(hashing_embedding("case"), hashing_embedding("CASE")) == pytest.approx(1.0)


def test_nothing_to_embed_is_refused() -> None:
    with pytest.raises(EmbeddingError, match="no letters or digits"):
        hashing_embedding(" ,,, ")
    with pytest.raises(EmbeddingError, match="text 1 is empty"):
        HashingTextEmbedderResource().get_client().embed(["soap", "   "])


def test_embedding_text_is_caption_alt_text_and_name() -> None:
    text = embedding_text(caption="A red bottle.", alt_text="Product photo: red bottle", name="Red  Bottle")
    assert text == "A red bottle.\nProduct photo: red bottle\nRed Bottle"
    assert embedding_text(caption="", alt_text="", name="Mug") == "Mug"


def test_fingerprint_changes_with_the_model() -> None:
    assert text_fingerprint("mug", HASHING_MODEL) == text_fingerprint("mug", HASHING_MODEL)
    assert text_fingerprint("mug", HASHING_MODEL) != text_fingerprint("mug", "text-embedding-3-small")
    assert text_fingerprint("mug", HASHING_MODEL) != text_fingerprint("mug ", HASHING_MODEL)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [([[0.0] * 512], "all zeros"),
     ([[float("nan")] + [1.0] * 511], "NaN"),
     ([[1.0] * 511], r"shape \(1, 511\)")],
)  # fmt: skip
def test_normalise_refuses_unusable_vectors(vectors, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        normalise(vectors)


@pytest.mark.parametrize(
    ("vector", "problem"),
    [(as_json_floats(hashing_embedding("mug")), None),
     ([1.0] + [0.0] * 511, None),
     ([0.5] + [0.0] * 511, "norm is 0.500000"),
     ([0.0] * 512, "all zeros"),
     ([1.0] * 100, "has 100 values"),
     (["1"] + [0.0] * 511, "not a number"),
     ([float("inf")] + [0.0] * 511, "NaN or infinite"),
     ("0.1,0.2", "expected a list")],
)  # fmt: skip
def test_vector_problem(vector, problem: str | None) -> None:
    found = vector_problem(vector)
    assert found is None if problem is None else problem in found


def test_rank_returns_the_top_k_best_first_ties_in_row_order() -> None:
    matrix = normalise([[1, 0] + [0] * 510, [0, 1] + [0] * 510, [1, 1] + [0] * 510, [1, 0] + [0] * 510])
    query = normalise([[1, 0.1] + [0] * 510])[0]
    ranked = rank(query, matrix, top=3)
    assert [i for i, _ in ranked] == [0, 3, 2]  # rows 0 and 3 tie: row order
    assert ranked[0][1] == pytest.approx(ranked[1][1]) and ranked[1][1] > ranked[2][1]
    assert len(rank(query, matrix, top=10)) == 4 and rank(query, matrix, top=0) == []


def test_vector_index_reads_linked_rows() -> None:
    rows = [
        {"id": "P1", "name": "Red mug", "image": {"url": "https://x/P1.jpg", "vector_embedding": as_json_floats(hashing_embedding("red mug"))}},
        {"id": "P2", "name": "No vector yet", "image": {"url": "", "vector_embedding": None}},
        {"id": "P3", "name": "Blue soap", "image": {"url": "https://x/P3.jpg", "vector_embedding": as_json_floats(hashing_embedding("blue soap"))}},
    ]  # fmt: skip
    index = VectorIndex.from_rows(rows, model=HASHING_MODEL)
    assert index.ids == ("P1", "P3") and len(index) == 2
    assert index.search(hashing_embedding("blue hand soap"), top=1)[0][0] == "P3"
    with pytest.raises(EmbeddingError, match="P9: vector has 3 values"):
        VectorIndex.from_rows([{"id": "P9", "image": {"vector_embedding": [1.0, 0.0, 0.0]}}])


def test_hashing_embedder_labels_its_vectors() -> None:
    embedder = HashingTextEmbedderResource().get_client()
    result = embedder.embed(["red mug", "blue soap"])
    assert result.model == HASHING_MODEL == "hashing-512-v1" and not embedder.paid
    assert result.vectors.shape == (2, 512) and result.requests == 0
    assert np.array_equal(result.vectors[0], hashing_embedding("red mug"))


# -- the OpenAI embedder through the SDK, against the stand-in -------------------------------------------


server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0)


def embedder_for(standin: StandInServer, **settings) -> OpenAITextEmbedder:
    resource = OpenAITextEmbedderResource(
        api_key=settings.pop("api_key", KEY), base_url=standin.base_url, **settings
    )
    return resource.get_client()


def test_openai_embedder_batches_and_returns_unit_vectors_in_order(standin: StandInServer) -> None:
    embedder = embedder_for(standin, batch_size=256)
    texts = [f"product number {i} blue soap" for i in range(600)]
    result = embedder.embed(texts)
    assert result.model == "text-embedding-3-small" and embedder.paid
    assert result.vectors.shape == (600, 512) and result.requests == 3
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    stats = standin.stats()["embeddings"]
    assert (stats["requests"], stats["items"]) == (3, 600)
    assert result.usage["prompt_tokens"] > 0
    one = embedder.embed([texts[300]]).vectors[0]
    assert np.allclose(one, result.vectors[300], atol=1e-6)  # order kept across batches
    # The API's vector, not the offline one: the two models differ.
    assert not np.allclose(one, hashing_embedding(texts[300]), atol=1e-3)


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [("server_error", ErrorClass.TRANSIENT),
     ("rate_limit", ErrorClass.RATE_LIMITED),
     ("insufficient_quota", ErrorClass.QUOTA_EXHAUSTED),
     ("hang", ErrorClass.TRANSIENT)],
)  # fmt: skip
def test_embedding_failures_are_classified(
    standin: StandInServer, fault: str, error_class: ErrorClass
) -> None:
    standin.configure(embedding_faults={fault: 1.0})
    with pytest.raises(ImageAPIError) as caught:
        embedder_for(standin, timeout_s=0.5).embed(["soap"])
    assert caught.value.error_class is error_class and caught.value.__context__ is None


def test_a_wrong_key_or_model_fails_naming_the_setting_never_the_key(standin: StandInServer) -> None:
    wrong = "sk-wrong-embedding-key-must-not-leak"
    embedder = embedder_for(standin, api_key=wrong)
    with pytest.raises(ImageAPIError) as caught:
        embedder.embed(["soap"])
    assert caught.value.error_class is ErrorClass.CONFIGURATION
    assert wrong not in str(caught.value) and wrong not in repr(embedder)
    with pytest.raises(ImageAPIError) as missing:
        embedder_for(standin, model="text-embedding-9").embed(["soap"])
    assert missing.value.error_class is ErrorClass.CONFIGURATION and "text embedder's `model`" in str(
        missing.value
    )
    with pytest.raises(ImageAPIError) as refused:
        embedder_for(standin, dimensions=4000).embed(["soap"])
    assert refused.value.error_class is ErrorClass.BAD_REQUEST and "dimensions" in str(refused.value)


def test_check_config(standin: StandInServer) -> None:
    with pytest.raises(RunStopped, match="OPENAI_API_KEY is not set"):
        embedder_for(standin, api_key=" ").check_config()
    with pytest.raises(RunStopped, match="batch_size must be within 1..2048"):
        embedder_for(standin, batch_size=5000).check_config()
    embedder_for(standin).check_config()
