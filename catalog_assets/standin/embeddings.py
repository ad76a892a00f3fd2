"""The Embeddings API stand-in: `CreateEmbeddingResponse` with deterministic, L2-normalised hashing vectors
(words, word pairs and character trigrams), so the same text always gets the same vector and texts sharing
words get closer vectors; `encoding_format` float or base64 (what the SDK sends when none is asked for).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any

from catalog_assets.standin.config import EMBEDDING_MODELS, StandInConfig
from catalog_assets.standin.protocol import APIError, invalid

MAX_INPUTS = 2048
MAX_TOKENS_PER_INPUT = 8192
_WORD = re.compile(r"[0-9a-z]+")


def approx_tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3)) if text.strip() else 0


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    features: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
    features += [(f"b:{a} {b}", 0.6) for a, b in zip(words, words[1:], strict=False)]
    for w in words:
        padded = f"#{w}#"
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        weight = 0.5 / math.sqrt(len(grams))
        features += [(f"c:{g}", weight) for g in grams]
    return features or [(f"raw:{text}", 1.0)]


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector of `dimensions` floats for `text`: every feature adds +/- its weight to one slot."""
    vector = [0.0] * dimensions
    for feature, weight in _features(text):
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:7], "big") % dimensions
        vector[slot] += weight if digest[7] & 1 else -weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # every feature cancelled out: fall back to one slot of the text's own hash
        vector[int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % dimensions] = (
            1.0
        )
        norm = 1.0
    return [v / norm for v in vector]


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        value = [value]  # one input given as token ids
    if not isinstance(value, list) or not value:
        raise invalid("input", "'input' must be a non-empty string or array.", "invalid_type")
    if len(value) > MAX_INPUTS:
        raise invalid("input", f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.")
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, list) and all(isinstance(t, int) for t in item):
            item = " ".join(f"t{t}" for t in item)  # token ids: embedded as words of their own
        if not isinstance(item, str):
            raise invalid(f"input[{i}]", f"'input[{i}]' must be a string or an array of token ids.")
        if not item:
            raise invalid(f"input[{i}]", f"'input[{i}]' is empty: embeddings need non-empty text.")
        if approx_tokens(item) > MAX_TOKENS_PER_INPUT:
            raise invalid(
                f"input[{i}]",
                f"This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens; 'input[{i}]' is longer.",
                "context_length_exceeded",
            )
        texts.append(item)
    return texts


def parse_embedding_request(config: StandInConfig, raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """The EmbeddingCreateParams, validated like the API (400 / 404 otherwise)."""
    req = raw if isinstance(raw, dict) else _json(raw)
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    if model not in EMBEDDING_MODELS:
        raise APIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    full = EMBEDDING_MODELS[model]
    dimensions = req.get("dimensions")
    if dimensions is not None:
        if model == "text-embedding-ada-002":
            raise invalid(
                "dimensions", "This model does not support specifying dimensions.", "unsupported_parameter"
            )
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= full:
            raise invalid(
                "dimensions", f"Invalid 'dimensions': {dimensions!r}. Expected 1 to {full} for {model}."
            )
    encoding = req.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid(
            "encoding_format", f"Invalid 'encoding_format': {encoding!r}. Expected 'float' or 'base64'."
        )
    return {
        "model": model,
        "texts": _inputs(req.get("input")),
        "dimensions": dimensions or full,
        "encoding": encoding,
    }


def embedding_response(params: dict[str, Any]) -> dict[str, Any]:
    data = []
    for index, text in enumerate(params["texts"]):
        vector = embed(text, params["dimensions"])
        if params["encoding"] == "base64":
            value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        else:
            value = vector
        data.append({"object": "embedding", "index": index, "embedding": value})
    tokens = sum(approx_tokens(t) for t in params["texts"])
    return {
        "object": "list",
        "data": data,
        "model": params["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _json(raw: bytes) -> dict[str, Any]:
    try:
        req = json.loads(raw or b"null")
    except ValueError:
        req = None
    if not isinstance(req, dict):
        raise invalid("", "We could not parse the JSON body of your request.", "invalid_json")
    return req
