"""`catalog-images search` and `search-image`: rank the linked catalog's image vectors (read from the store
the environment selects) against a text or a photo, with the environment's embedder and reviewer."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any, TextIO

from catalog_assets import state
from catalog_assets.embeddings import EmbeddingError, VectorIndex
from catalog_assets.errors import ImageAPIError, RunStopped, StoreError
from catalog_assets.image_query import (
    OCRUnavailable,
    QueryInputError,
    check_query_text,
    format_hits,
    read_query_image,
    search_image,
    search_text,
)

#: exit status of a query that could not be used (bad file, empty text, nothing to search yet)
BAD_INPUT = 2
#: exit status of a service that failed (embedder or reviewer)
SERVICE_FAILED = 1


class SearchSetupError(ValueError):
    """Nothing to search: no linked catalog, no vectors, or vectors of another embedding model."""


def load_index(linked: list[dict] | None, location: str, model: str) -> VectorIndex:
    """The linked catalog's vectors, checked: present, and made by the embedder's `model`."""
    if linked is None:
        raise SearchSetupError(
            f"no linked catalog in the store {location} ({state.LINKED_JSON_KEY}): run `catalog-images run` "
            "(or publish_job) first"
        )
    made_by = sorted({str(m) for p in linked if (m := (p.get("image") or {}).get("embedding_model"))})
    index = VectorIndex.from_rows(linked, model=model)
    if not len(index):
        raise SearchSetupError(
            f"the linked catalog in {location} has no image vectors: publish again with this version "
            "(`catalog-images run`)"
        )
    if made_by and made_by != [model]:
        raise SearchSetupError(
            f"the catalog's vectors were made by {', '.join(made_by)}, the configured embedder is {model}: "
            "publish again to re-embed, or configure the same model (CATALOG_EMBEDDING_MODEL)"
        )
    return index


def run_search(
    query: str,
    *,
    image: bool,
    top: int,
    env_resources: dict[str, Any] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the `top` hits for a text (`image=False`) or the photo at path `query`; one line on stderr and
    exit 2 for input that cannot be searched, 1 when a service fails, 0 otherwise."""
    from catalog_assets.definitions import resources_for_environment

    out, err = out or sys.stdout, err or sys.stderr
    try:  # a bad query is refused before any store or service is touched
        if image:
            read_query_image(query)
        else:
            check_query_text(query)
    except QueryInputError as exc:
        print(_one_line(exc), file=err)
        return BAD_INPUT
    resources = env_resources or resources_for_environment()
    try:
        with ExitStack() as stack:
            store = stack.enter_context(resources["store"].process_config_and_initialize_cm()).get_client()
            embedder = stack.enter_context(
                resources["text_embedder"].process_config_and_initialize_cm()
            ).get_client()
            embedder.check_config()
            linked = store.get_json(state.LINKED_JSON_KEY, default=None)
            index = load_index(linked, store.location, embedder.model)
            if image:
                reviewer = stack.enter_context(
                    resources["image_reviewer"].process_config_and_initialize_cm()
                ).get_client()
                reviewer.check_config()
                description, found = search_image(query, index, embedder, reviewer, top)
                print(f"query image: {description.alt_text}", file=out)
            else:
                found = search_text(query, index, embedder, top)
            print(format_hits(found), file=out)
    except (QueryInputError, SearchSetupError, EmbeddingError, OCRUnavailable, StoreError, RunStopped) as exc:
        print(_one_line(exc), file=err)
        return BAD_INPUT
    except ImageAPIError as exc:
        print(_one_line(exc), file=err)
        return SERVICE_FAILED
    return 0


def _one_line(exc: BaseException) -> str:
    return "error: " + " ".join(str(exc).split())
