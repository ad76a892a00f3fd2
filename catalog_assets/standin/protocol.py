"""The public API's shapes for the stand-in: CreateImageRequest validation, the `Error` object with the
status codes and codes OpenAI uses, and a plausible `usage`.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from catalog_assets.standin.config import StandInConfig
from catalog_assets.standin.render import PIL_FORMATS

STANDARD_SIZES = ("1024x1024", "1536x1024", "1024x1536")
QUALITIES = ("low", "medium", "high", "auto")
# Output tokens per image of gpt-image-1 (published), used to fill `usage` plausibly.
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}


class APIError(Exception):
    """An error answer in the public `Error` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None,
        *,
        param: str | None = None,
        outcome: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.outcome = outcome or code or type_
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, "invalid_request_error", code, param=param, outcome="invalid_request")


def masked(key: str) -> str:
    # What the real API echoes for a wrong key: a prefix and the last four characters.
    return f"{key[:3]}{'*' * max(4, len(key) - 7)}{key[-4:]}" if len(key) > 8 else "*" * len(key)


def fault_error(
    kind: str,
    model: str,
    config: StandInConfig,
    limit: int | None,
    unit: str = "images per minute (IPM)",
) -> APIError:
    if kind == "invalid_key":
        return APIError(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if kind == "permission_denied":
        message = f"Your organization must be verified to use the model `{model}`."
        return APIError(403, message, "invalid_request_error", None, outcome="permission_denied")
    if kind == "insufficient_quota":
        return APIError(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        )
    if kind == "rate_limit":
        wait = config.fault_retry_after_s
        return APIError(
            429,
            f"Rate limit reached for {model} on {unit}: Limit {limit or 0}. Please try again in {wait:g}s.",
            "requests",
            "rate_limit_exceeded",
            headers={"retry-after": str(max(1, round(wait))), "retry-after-ms": str(round(wait * 1000))},
        )
    if kind == "moderation_blocked":
        return APIError(
            400,
            "Your request was rejected by the safety system. If you believe this is an error, contact us.",
            "image_generation_user_error",
            "moderation_blocked",
        )
    if kind == "content_policy_violation":
        return APIError(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may contain text that "
            "is not allowed by our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        )
    return APIError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        "server_error",
    )


def authorize(config: StandInConfig, authorization: str) -> None:
    """Raise the API's 401 for a missing or (when one is configured) different key."""
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise APIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            outcome="missing_api_key",
        )
    if config.api_key is not None and not secrets.compare_digest(key.encode(), config.api_key.encode()):
        # The real API echoes part of the wrong key: clients must not pass this message on verbatim.
        raise APIError(
            401,
            f"Incorrect API key provided: {masked(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )


def parse_request(config: StandInConfig, raw: bytes) -> dict[str, Any]:
    """The CreateImageRequest fields the stand-in uses, validated like the API (400 / 404 otherwise)."""
    try:
        req = json.loads(raw or b"null")
    except ValueError:
        req = None
    if not isinstance(req, dict):
        raise invalid("", "We could not parse the JSON body of your request.", "invalid_json")
    prompt = req.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
    if len(prompt) > 32000:
        raise invalid(
            "prompt", "The prompt is too long: at most 32000 characters.", "string_above_max_length"
        )
    model = req.get("model") or "gpt-image-2"
    if model not in config.models:
        raise APIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    n = req.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise invalid("n", f"Invalid 'n': {n!r}. Expected an integer from 1 to 10.")
    size = req.get("size") or "auto"
    size = "1024x1024" if size == "auto" else size
    width, height = dimensions(model, size)
    quality = req.get("quality") or "auto"
    if quality not in QUALITIES and not (model.startswith("gpt-image-2.5") and quality in ("xhigh", "max")):
        raise invalid("quality", f"Invalid 'quality': {quality!r}. Supported: {', '.join(QUALITIES)}.")
    output_format = req.get("output_format") or "png"
    if output_format not in PIL_FORMATS:
        raise invalid(
            "output_format", f"Invalid 'output_format': {output_format!r} (stand-in: png|jpeg|webp)."
        )
    compression = req.get("output_compression")
    if compression is not None and (not isinstance(compression, int) or not 0 <= compression <= 100):
        raise invalid(
            "output_compression", "Invalid 'output_compression': expected an integer from 0 to 100."
        )
    if req.get("moderation", "auto") not in ("low", "auto", None):
        raise invalid("moderation", "Invalid 'moderation': expected 'low' or 'auto'.")
    background = req.get("background") or "auto"
    if background == "transparent" and output_format == "jpeg":
        raise invalid("background", "Transparent backgrounds need output_format png or webp.")
    if req.get("stream"):
        raise invalid("stream", "The stand-in does not stream; send stream=false.", "unsupported_parameter")
    shape = req.get("response_format") or config.response_shape
    if shape not in ("url", "b64_json"):
        raise invalid("response_format", "Invalid 'response_format': expected 'url' or 'b64_json'.")
    return {
        "model": model,
        "prompt": prompt,
        "n": n,
        "size": f"{width}x{height}",
        "width": width,
        "height": height,
        "quality": quality,
        "quality_used": "medium" if quality == "auto" else quality,
        "output_format": output_format,
        "output_compression": compression,
        "moderation": req.get("moderation"),
        "background": background,
        "response_format": shape,
    }


def blocked_word(words: list[str], prompt: str) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", prompt, re.IGNORECASE) for w in words if w.strip())


def dimensions(model: str, size: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", str(size))
    if not match:
        raise invalid("size", f"Invalid 'size': {size!r}. Expected WIDTHxHEIGHT, e.g. 1024x1024, or auto.")
    width, height = int(match[1]), int(match[2])
    if size in STANDARD_SIZES:
        return width, height
    custom_ok = model.startswith("gpt-image-2")
    if not custom_ok or width % 16 or height % 16 or max(width, height) > 3840 or min(width, height) < 256:
        raise invalid(
            "size", f"Invalid 'size': {size!r} for {model}. Supported: {', '.join(STANDARD_SIZES)}."
        )
    if not 1 / 3 <= width / height <= 3:
        raise invalid("size", f"Invalid 'size': {size!r}: the aspect ratio must be between 1:3 and 3:1.")
    return width, height


def usage(params: dict[str, Any]) -> dict[str, Any]:
    text_tokens = max(1, round(len(params["prompt"].split()) * 1.3))
    per_image = OUTPUT_TOKENS.get(params["quality_used"], OUTPUT_TOKENS["high"])
    output_tokens = round(per_image * params["width"] * params["height"] / 1024**2) * params["n"]
    return {
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + output_tokens,
    }
