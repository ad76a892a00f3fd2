"""The OpenAI Images API as an `ImageGenerator`: one attempt per call through the official `openai` SDK
(its own retries off), every request tagged with the product for attribution, every error classified.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import httpx2
from pydantic import Field

from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, classify_openai_error, redact
from catalog_assets.resources.image_api import GeneratedImage, ImageGenerator, ImageGeneratorResource
from catalog_assets.resources.openai_client import (
    OpenAIAccountResource,
    Secret,
    SharedSDKClient,
    response_headers,
)

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-image-2"
# model -> (shutdown date, what to use instead). Snapshots (`<model>-YYYY-MM-DD`) share their model's date.
MODEL_SHUTDOWNS: dict[str, tuple[date, str]] = {
    "dall-e-2": (date(2026, 5, 12), DEFAULT_MODEL),
    "dall-e-3": (date(2026, 5, 12), DEFAULT_MODEL),
    "gpt-image-1": (date(2026, 10, 23), f"{DEFAULT_MODEL} (or gpt-image-2.5-sunburst / gpt-image-2.5-flare)"),
    "gpt-image-1-mini": (date(2026, 12, 1), DEFAULT_MODEL),
    "gpt-image-1.5": (date(2026, 12, 1), DEFAULT_MODEL),
    "chatgpt-image-latest": (date(2026, 12, 1), DEFAULT_MODEL),
}
SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
QUALITIES = ("low", "medium", "high", "auto", "xhigh", "max")
OUTPUT_FORMATS = ("jpeg", "png", "webp")
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def model_shutdown(model: str) -> tuple[date, str] | None:
    """(shutdown date, replacement) of a retired or retiring model, else None."""
    return MODEL_SHUTDOWNS.get(_SNAPSHOT.sub("", model))


def check_model(model: str, today: date | None = None) -> None:
    """Raise `RunStopped` for a model already shut down; warn about one shutting down soon."""
    shutdown = model_shutdown(model)
    if shutdown is None:
        return
    when, replacement = shutdown
    today = today or datetime.now(UTC).date()
    if today >= when:
        raise RunStopped(
            ErrorClass.CONFIGURATION,
            f"image model {model!r} was shut down on {when.isoformat()}: set the image generator's `model` "
            f"to {replacement}",
        )
    log.warning("image model %r shuts down on %s; switch `model` to %s", model, when.isoformat(), replacement)


def client_request_id(product_id: str, attempt: int) -> str:
    """`X-Client-Request-Id` for one call, e.g. `PROD-000123-a2-9f3c0b1d`: ASCII, at most 512 characters."""
    # Percent-encoding keeps any product id a valid header value, and reversible for the stand-in's counts.
    product = quote(str(product_id), safe="-_.~")[:400]
    return f"{product}-a{int(attempt)}-{secrets.token_hex(4)}"


class OpenAIImageGenerator(SharedSDKClient, ImageGenerator):
    """One `images.generate` call per `generate()`; failures raise a classified `ImageAPIError`."""

    paid = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        size: str = "1024x1024",
        quality: str = "medium",
        output_format: str = "jpeg",
        output_compression: int | None = 85,
        moderation: str = "auto",
        timeout_s: float = 120.0,
        images_per_minute: float | None = 60.0,
        max_download_bytes: int = 20_000_000,
        concurrency: int = 32,
        generation_mode: str = "sync",
    ) -> None:
        self.generation_mode = generation_mode
        self._key = Secret((api_key or "").strip())
        self.base_url = base_url or None
        self.model, self.size, self.quality = model, size, quality
        self.output_format, self.output_compression, self.moderation = (
            output_format,
            output_compression,
            moderation,
        )
        self.timeout_s = timeout_s
        self.images_per_minute = images_per_minute
        self.max_download_bytes = max_download_bytes
        self.concurrency = concurrency
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIImageGenerator(model={self.model!r}, size={self.size!r}, quality={self.quality!r})"

    __str__ = __repr__

    # -- ImageGenerator ---------------------------------------------------------------------------------

    def check_config(self) -> None:
        if not self._key.reveal():
            raise RunStopped(
                ErrorClass.CONFIGURATION,
                "OPENAI_API_KEY is not set (or empty): set it to use the OpenAI image generator, "
                "or unset it to use the offline renderer",
            )
        check_model(self.model)
        problems = []
        if self.base_url and urlsplit(self.base_url).scheme not in ("http", "https"):
            problems.append("base_url (OPENAI_BASE_URL) must be an http(s) URL")
        if self.size not in SIZES and not re.fullmatch(r"\d{2,4}x\d{2,4}", self.size):
            problems.append(f"size must be one of {', '.join(SIZES)} or WIDTHxHEIGHT")
        if self.quality not in QUALITIES:
            problems.append(f"quality must be one of {', '.join(QUALITIES)}")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}")
        if self.output_compression is not None and not 0 <= self.output_compression <= 100:
            problems.append("output_compression must be within 0..100")
        if self.moderation not in ("auto", "low"):
            problems.append("moderation must be 'auto' or 'low'")
        if self.timeout_s <= 0:
            problems.append("timeout_s must be positive")
        if self.generation_mode not in ("sync", "batch"):
            problems.append("generation_mode (CATALOG_GENERATION_MODE) must be 'sync' or 'batch'")
        if problems:
            raise RunStopped(ErrorClass.CONFIGURATION, "image generator settings: " + "; ".join(problems))

    def rate_limit_bucket(self) -> str:
        return self.account_bucket(self.model)

    def generate(
        self, *, product_id: str, prompt: str, attempt: int, product: Mapping | None = None
    ) -> GeneratedImage:
        if not self._key.reveal():
            raise ImageAPIError(ErrorClass.CONFIGURATION, "OPENAI_API_KEY is not set")
        headers = {"X-Client-Request-Id": client_request_id(product_id, attempt)}
        # The error is raised outside the `except` block so that no traceback chains the SDK's exception,
        # whose text may echo part of a rejected key.
        try:
            raw = self.client().images.with_raw_response.generate(
                **self.request_params(prompt), extra_headers=headers
            )
            response = raw.parse()
            answer_headers = response_headers(raw.headers)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a classified ImageAPIError
            error = classify_openai_error(exc, secrets=(self._key.reveal(),))
        else:
            return self._image(response, answer_headers)
        raise error

    # -- helpers ----------------------------------------------------------------------------------------

    def request_params(self, prompt: str) -> dict[str, Any]:
        """The `images.generate` arguments for `prompt` (n=1; compression only where the format takes it)."""
        params: dict[str, Any] = {
            "model": self.model,
            "prompt": prompt,
            "n": 1,
            "size": self.size,
            "quality": self.quality,
            "output_format": self.output_format,
            "moderation": self.moderation,
        }
        if self.output_compression is not None and self.output_format in ("jpeg", "webp"):
            params["output_compression"] = self.output_compression
        return params

    def image_from_body(self, body: Mapping[str, Any]) -> GeneratedImage:
        """The image of an `ImagesResponse` body as a Batch API output line carries it, decoded and checked
        as the synchronous answer is."""
        from openai.types import ImagesResponse

        try:
            response = ImagesResponse.model_validate(body)
        except ValueError:
            raise ImageAPIError(
                ErrorClass.INVALID_IMAGE, "the batch line's body did not match the ImagesResponse schema"
            ) from None
        return self._image(response, {})

    def _image(self, response: Any, headers: dict[str, str]) -> GeneratedImage:
        item = response.data[0] if response.data else None
        if item is not None and item.b64_json:
            try:
                data = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError):
                raise ImageAPIError(
                    ErrorClass.INVALID_IMAGE, "b64_json is not valid base64", headers=headers
                ) from None
        elif item is not None and item.url:
            data = self._download(item.url)
        else:
            raise ImageAPIError(ErrorClass.INVALID_IMAGE, "the response holds no image (no b64_json or url)")
        if not data:
            raise ImageAPIError(ErrorClass.INVALID_IMAGE, "the API returned an empty image", headers=headers)
        return GeneratedImage(
            data=data,
            model=self.model,
            revised_prompt=item.revised_prompt,
            usage=_flat_usage(response.usage),
            headers=headers,
        )

    def _download(self, url: str) -> bytes:
        """GET an image URL (legacy response shape) within the timeout and `max_download_bytes`."""
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}"  # the query is a signature: never shown
        if parts.scheme not in ("http", "https"):
            raise ImageAPIError(ErrorClass.INVALID_IMAGE, f"image URL is not http(s): {shown[:200]}")
        error: ImageAPIError | None = None
        try:
            # A plain client: the API key is not sent to the image host.
            with (
                httpx2.Client(timeout=self.timeout_s, follow_redirects=True) as http,
                http.stream("GET", url) as answer,
            ):
                if answer.status_code >= 400:
                    error_class = (
                        ErrorClass.TRANSIENT if answer.status_code >= 500 else ErrorClass.INVALID_IMAGE
                    )
                    error = ImageAPIError(
                        error_class, f"image download failed ({answer.status_code}) from {shown}"
                    )
                else:
                    declared = int(answer.headers.get("content-length") or 0)
                    if declared > self.max_download_bytes:
                        error = self._too_big(shown, declared)
                    else:
                        chunks, total = [], 0
                        for chunk in answer.iter_bytes():
                            total += len(chunk)
                            if total > self.max_download_bytes:
                                error = self._too_big(shown, total)
                                break
                            chunks.append(chunk)
                        else:
                            return b"".join(chunks)
        except httpx2.TimeoutException:
            error = ImageAPIError(
                ErrorClass.TRANSIENT, f"image download timed out after {self.timeout_s:g}s: {shown}"
            )
        except httpx2.HTTPError as exc:
            message = redact(f"image download failed ({type(exc).__name__}) from {shown}")
            error = ImageAPIError(ErrorClass.TRANSIENT, message)
        assert error is not None
        raise error

    def _too_big(self, shown: str, size: int) -> ImageAPIError:
        return ImageAPIError(
            ErrorClass.INVALID_IMAGE,
            f"image at {shown} is larger than max_download_bytes={self.max_download_bytes} ({size}+ bytes)",
        )


def _flat_usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    flat = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    details = getattr(usage, "input_tokens_details", None)
    if details is not None:
        flat["input_text_tokens"] = details.text_tokens
        flat["input_image_tokens"] = details.image_tokens
    return {k: int(v) for k, v in flat.items() if v is not None}


class OpenAIImageGeneratorResource(OpenAIAccountResource, ImageGeneratorResource):
    """OpenAI Images API (`openai` SDK). Wire the key as `EnvVar("OPENAI_API_KEY")`; never a literal."""

    model: str = Field(
        default=DEFAULT_MODEL, description="A current GPT image model; retired ones stop the run."
    )
    size: str = Field(
        default="1024x1024", description="1024x1024, 1536x1024, 1024x1536, auto or WIDTHxHEIGHT."
    )
    quality: str = Field(
        default="medium", description="low | medium | high | auto (prices differ per quality)."
    )
    output_format: str = Field(default="jpeg", description="jpeg | png | webp; jpeg keeps transfers small.")
    output_compression: int | None = Field(
        default=85, description="0-100, sent only with jpeg/webp; None leaves the API's default (100)."
    )
    moderation: str = Field(default="auto", description="Content moderation level: auto | low.")
    timeout_s: float = Field(
        default=120.0, description="Seconds per request before it is abandoned (the SDK default, 600, hangs)."
    )
    # An int: Dagster's config has no float EnvVar, and CATALOG_IMAGES_PER_MINUTE arrives as EnvVar.int.
    images_per_minute: int | None = Field(
        default=60, description="Images per minute this run may request (the account's image rate limit)."
    )
    max_download_bytes: int = Field(
        default=20_000_000, description="Size cap of an image downloaded from a `url` response."
    )
    concurrency: int = Field(
        default=32,
        description="Requests in flight at once within a partition; to use the whole rate limit, about "
        "images_per_minute / 60 x seconds per image, plus a quarter for decoding and storing.",
    )

    generation_mode: Literal["sync", "batch"] = Field(
        default="sync",
        description="sync: one Images API call per product while the run waits. batch: each partition goes to "
        "OpenAI's Batch API as one file at half the price (completes within 24 h); the run that submits ends, "
        "batch_images_sensor requests the run that stores the images. Set with CATALOG_GENERATION_MODE.",
    )

    def make_client(self) -> OpenAIImageGenerator:
        return OpenAIImageGenerator(
            api_key=self.api_key,
            base_url=self.base_url,
            model=self.model,
            size=self.size,
            quality=self.quality,
            output_format=self.output_format,
            output_compression=self.output_compression,
            moderation=self.moderation,
            timeout_s=self.timeout_s,
            images_per_minute=self.images_per_minute,
            max_download_bytes=self.max_download_bytes,
            concurrency=self.concurrency,
            generation_mode=self.generation_mode,
        )

    def get_client(self) -> OpenAIImageGenerator:
        return super().get_client()
