"""The linked catalog's image vectors: every product with an image has a usable one (512 finite floats, unit
norm, not zero) and no two products share a vector (two images described alike are not told apart); with
them, the retrieval self-test figure: recall@5 of each product's own name as a text query."""

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, asset_check

from catalog_assets import call_ledger, state
from catalog_assets.checks.names import LINKED_CATALOG, LINKED_VECTORS
from catalog_assets.checks.results import table
from catalog_assets.embeddings import (
    EMBEDDING_DIMENSIONS,
    EmbeddingError,
    VectorIndex,
    recall_at_k,
    vector_problem,
)
from catalog_assets.errors import ImageAPIError, RunStopped
from catalog_assets.resources.coordination import CoordinationResource
from catalog_assets.resources.embedder import TextEmbedder, TextEmbedderResource
from catalog_assets.resources.store import ImageStore, ImageStoreResource

SELF_TEST_KEY = "state/retrieval_self_test.json"
SELF_TEST_K = 5


def vector_problems(linked: Iterable[Mapping[str, Any]]) -> tuple[int, list[list[str]]]:
    """(products with an image, [product, problem] rows): a missing or malformed vector, or a vector
    another product has too."""
    problems: list[list[str]] = []
    first_with: dict[tuple[float, ...], str] = {}
    with_image = 0
    for product in linked:
        image = product.get("image") if isinstance(product.get("image"), Mapping) else {}
        pid = str(product.get("id"))
        vector = image.get("vector_embedding")
        if not image.get("url"):
            continue
        with_image += 1
        if vector is None:
            problems.append([pid, "no vector_embedding"])
            continue
        problem = vector_problem(vector, EMBEDDING_DIMENSIONS)
        if problem:
            problems.append([pid, problem])
            continue
        same = first_with.setdefault(tuple(vector), pid)
        if same != pid:
            problems.append([pid, f"same vector as {same}"])
    return with_image, problems


@asset_check(
    asset=LINKED_CATALOG,
    name=LINKED_VECTORS,
    description=f"Every product with an image has an image.vector_embedding of {EMBEDDING_DIMENSIONS} finite "
    "floats with unit norm (not all zeros), and no two products have the same vector. ERROR, not blocking: "
    "only the report is downstream, and it should still be written. Its metadata records the retrieval "
    "self-test: recall_at_5 of each product's own name as a text query against the catalog's vectors.",
)
def linked_vectors_valid(
    context: AssetCheckExecutionContext,
    store: ImageStoreResource,
    text_embedder: TextEmbedderResource,
    coordination: CoordinationResource,
) -> AssetCheckResult:
    client = store.get_client()
    linked = client.get_json(state.LINKED_JSON_KEY, default=None)
    if linked is None:
        return AssetCheckResult(
            passed=False, description=f"no linked catalog in the store ({state.LINKED_JSON_KEY})"
        )
    with_image, problems = vector_problems(linked)
    embedder = text_embedder.get_client()
    coordinator = coordination.get_client()
    with call_ledger.recording(coordinator.call_log(), client, context.run.run_id) as recorder:
        # the self-test's queries share the embedder's limits and go in the call record
        embedder.share_limits(coordinator, recorder=recorder)
        self_test = retrieval_self_test(client, linked, embedder)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} of {with_image} image vectors are unusable or shared"
        if problems
        else f"all {with_image} image vectors are {EMBEDDING_DIMENSIONS}-dim unit vectors, each its own",
        metadata={
            "products": len(linked),
            "with_image": with_image,
            "bad_vectors": len(problems),
            "problems": table(["product", "problem"], problems),
            **self_test,
            "explanation": f"image.vector_embedding must be {EMBEDDING_DIMENSIONS} finite floats of L2 norm "
            "1 (within 1e-3), for every product with an image.url; a vector equal to another product's "
            "makes the two indistinguishable in search",
        },
    )


def retrieval_self_test(client: ImageStore, linked: list[dict], embedder: TextEmbedder) -> dict[str, Any]:
    """`recall_at_5`: the share of products with a vector found among the 5 nearest to their own name, embedded
    as a search query. Kept in the store with the linked catalog's sha256 and the model, so an unchanged
    catalog is not queried again (no embedding call); a figure that cannot be made says why, never fails."""
    head = client.head(state.LINKED_JSON_KEY)
    digest = head.sha256 if head else None
    earlier = client.get_json(SELF_TEST_KEY, default=None) or {}
    if digest and earlier.get("linked_sha256") == digest and earlier.get("model") == embedder.model:
        return {"recall_at_5": earlier["recall_at_5"], "self_test_queries": earlier["queries"]}
    try:
        index = VectorIndex.from_rows(linked, model=embedder.model)
        if not len(index):
            return {"recall_at_5": 0.0, "self_test_queries": 0}
        embedder.check_config()
        queries = embedder.embed([name or pid for pid, name in zip(index.ids, index.names, strict=True)])
        recall = round(recall_at_k(index, queries.vectors, SELF_TEST_K), 4)
    except (EmbeddingError, ImageAPIError, RunStopped) as exc:
        return {"self_test_error": " ".join(str(exc).split())[:300]}
    client.put_json(
        SELF_TEST_KEY,
        {"linked_sha256": digest, "model": embedder.model, "recall_at_5": recall, "queries": len(index)},
    )
    return {"recall_at_5": recall, "self_test_queries": len(index)}
