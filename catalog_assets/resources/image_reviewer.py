"""The image-reviewer interface and its two implementations: the offline reviewer (embedded default: pixels
and the product's fields, no network) and a vision model through the OpenAI Responses API (`openai` SDK,
one attempt per call, structured JSON output, errors classified by `classify_openai_error`; once given the
coordinator, each call waits for the shared limiter and breaker of its own bucket, see `call_guard`).
"""

from __future__ import annotations

import base64
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource
from PIL import Image
from pydantic import Field

from catalog_assets.call_guard import GuardedClient
from catalog_assets.call_ledger import REVIEW, CallRecorder
from catalog_assets.costs import FREE_MODEL_PREFIX
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped, classify_openai_error
from catalog_assets.image_query import ocr_text
from catalog_assets.imaging import decode_image, make_thumbnail
from catalog_assets.resources.coordination import Coordinator
from catalog_assets.resources.embedder import _for_setting
from catalog_assets.resources.openai_client import (
    OpenAIAccountResource,
    Secret,
    SharedSDKClient,
    response_headers,
)
from catalog_assets.resources.openai_images import client_request_id
from catalog_assets.review import (
    ALT_TEXT_MAX,
    OFFLINE_REVIEWER,
    REVIEW_PROMPT_VERSION,
    REVIEW_SCHEMA,
    REVIEW_SCHEMA_NAME,
    ImageReview,
    ReviewFormatError,
    dominant_colours,
    offline_description,
    parse_review,
    plain_text,
    review_prompt,
    shorten,
)

if TYPE_CHECKING:
    import openai

DEFAULT_REVIEW_MODEL = "gpt-5.4-mini"
#: reviews a minute by default: a first-tier account's request limit for a small model
DEFAULT_REVIEWS_PER_MINUTE = 500
REVIEW_IMAGE_PX = 512  # the variant sent for review: low detail reads a 512 px image as one tile
QUERY_ID = "query"

DESCRIBE_PROMPT = (
    "Describe this photo for a product search engine. No product is named: say what the image shows. "
    "Set shows_product to true if it shows one product, list issues as for a catalog image, copy legible "
    f"text into visible_text, write alt_text (at most {ALT_TEXT_MAX} characters), a caption of one or two "
    "sentences naming the kind of product, brand and colour if visible, and up to three dominant colours."
)


def is_offline_card(source_model: str | None) -> bool:
    """True for an image the offline card renderer drew (any version of its `offline-card-vN` label)."""
    return bool(source_model) and str(source_model).startswith(FREE_MODEL_PREFIX)


def _as_image(image: Image.Image | bytes) -> Image.Image:
    return image if isinstance(image, Image.Image) else decode_image(image)


class ImageReviewer(ABC):
    """Reviews stored images against their product, and describes query photos."""

    #: the reviewer's label recorded with every review (a vision model's name, or `OFFLINE_REVIEWER`)
    model: str
    #: True when no vision model looks at the images
    offline: bool = False
    #: True when a call costs money (budget guard and cost report apply)
    paid: bool = False
    #: requests per minute the shared limiter paces reviews at (None: no pacing)
    requests_per_minute: float | None = None

    @abstractmethod
    def review(
        self,
        *,
        product: Mapping[str, Any],
        image: Image.Image | bytes,
        source_model: str | None = None,
        attempt: int = 1,
    ) -> ImageReview:
        """Review one stored image of `product`; `source_model` is the image's generator (the offline card
        renderer's `offline-card-v1`, or an image model). Raises a classified `ImageAPIError`."""

    @abstractmethod
    def describe(self, image: Image.Image | bytes, *, attempt: int = 1) -> ImageReview:
        """Describe a query photo with no product named (for image search)."""

    def fingerprint_label(self) -> str:
        """What a review's fingerprint includes: the reviewer and the prompt version (a change reviews again)."""
        return f"{self.model}:{REVIEW_PROMPT_VERSION}"

    def check_config(self) -> None:  # noqa: B027 - optional hook
        """Raise `RunStopped` before any call when the configuration cannot work."""

    def share_limits(  # noqa: B027 - optional hook
        self,
        coordinator: Coordinator,
        *,
        breaker_wait_s: float = 120.0,
        recorder: CallRecorder | None = None,
    ) -> None:
        """Send every later call through `coordinator`'s rate limiter and breaker, waiting up to
        `breaker_wait_s` while the breaker is open, each call written to `recorder`'s call record (a free
        reviewer makes no calls)."""


class OfflineImageReviewer(ImageReviewer):
    """What can be said without a vision model: colours from pixels, alt text and caption from the fields.
    It approves its own product cards (it drew their content from the fields) and, unable to judge other
    images, approves them too; every review says `offline=True`."""

    model = OFFLINE_REVIEWER
    offline = True
    paid = False

    def __repr__(self) -> str:
        return "OfflineImageReviewer()"

    def review(
        self,
        *,
        product: Mapping[str, Any],
        image: Image.Image | bytes,
        source_model: str | None = None,
        attempt: int = 1,
    ) -> ImageReview:
        picture = _as_image(image)
        card = is_offline_card(source_model)
        alt, caption = offline_description(product, "card" if card else "photo")
        visible = ""
        if card:  # the text the card renderer draws: the name, then brand and kind
            details = " · ".join(
                plain_text(x, 60)
                for x in (product.get("brand"), product.get("subcategory") or product.get("category"))
                if plain_text(x, 60)
            )
            visible = " ".join(
                x for x in (plain_text(product.get("name") or product.get("id"), 300), details) if x
            )
        return ImageReview(
            shows_product=True,
            issues=(),
            visible_text=visible,
            alt_text=alt,
            caption=caption,
            dominant_colours=tuple(dominant_colours(picture)),
            reviewer=self.model,
            offline=True,
        )

    def describe(self, image: Image.Image | bytes, *, attempt: int = 1) -> ImageReview:
        picture = _as_image(image)
        text = ocr_text(picture)
        colours = tuple(dominant_colours(picture))
        tones = " and ".join(colours)
        if text:
            alt = shorten(f'Photo showing the text "{text}", mostly {tones}', ALT_TEXT_MAX)
            caption = shorten(f'A photo in {tones} tones with the text "{text}".', 400)
        else:
            alt = f"Photo in mostly {tones} tones, no legible text"
            caption = f"A photo in {tones} tones with no legible text."
        return ImageReview(
            shows_product=True,
            issues=(),
            visible_text=text,
            alt_text=alt,
            caption=caption,
            dominant_colours=colours,
            reviewer=self.model,
            offline=True,
        )


def image_data_url(image: Image.Image | bytes, px: int = REVIEW_IMAGE_PX) -> str:
    """A small JPEG variant of `image` as a `data:` URL (what `input_image` takes)."""
    jpeg = make_thumbnail(_as_image(image), px=px, quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


class OpenAIImageReviewer(SharedSDKClient, GuardedClient, ImageReviewer):
    """One `responses.create` call per review: the prompt and a low-detail image in, `REVIEW_SCHEMA` out."""

    paid = True
    offline = False
    call_kind = REVIEW

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = DEFAULT_REVIEW_MODEL,
        timeout_s: float = 60.0,
        image_px: int = REVIEW_IMAGE_PX,
        requests_per_minute: float | None = DEFAULT_REVIEWS_PER_MINUTE,
    ) -> None:
        self._key = Secret((api_key or "").strip())
        self.base_url = base_url or None
        self.model = model
        self.timeout_s = timeout_s
        self.image_px = image_px
        self.requests_per_minute = requests_per_minute or None
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIImageReviewer(model={self.model!r})"

    __str__ = __repr__

    def check_config(self) -> None:
        problems = []
        if not self._key.reveal():
            problems.append("OPENAI_API_KEY is not set (or empty): set it, or use the offline reviewer")
        if not self.model:
            problems.append("model is empty")
        if self.timeout_s <= 0:
            problems.append("timeout_s must be positive")
        if not 64 <= self.image_px <= 2048:
            problems.append("image_px must be within 64..2048")
        if self.requests_per_minute is not None and self.requests_per_minute < 0:
            problems.append("requests_per_minute must not be negative (0: no pacing)")
        if problems:
            raise RunStopped(ErrorClass.CONFIGURATION, "image reviewer settings: " + "; ".join(problems))

    def rate_limit_bucket(self) -> str:
        """The shared bucket of this key's reviews: the Responses endpoint and model, apart from generation's."""
        return self.account_bucket("responses", self.model)

    def review(
        self,
        *,
        product: Mapping[str, Any],
        image: Image.Image | bytes,
        source_model: str | None = None,
        attempt: int = 1,
    ) -> ImageReview:
        return self._ask(review_prompt(product), image, str(product.get("id") or ""), attempt)

    def describe(self, image: Image.Image | bytes, *, attempt: int = 1) -> ImageReview:
        return self._ask(DESCRIBE_PROMPT, image, QUERY_ID, attempt)

    def request_params(self, prompt: str, image_url: str) -> dict[str, Any]:
        """The `responses.create` arguments for one review."""
        return {
            "model": self.model,
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": prompt},
                        {"type": "input_image", "image_url": image_url, "detail": "low"},
                    ],
                }
            ],
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": REVIEW_SCHEMA_NAME,
                    "schema": REVIEW_SCHEMA,
                    "strict": True,
                }
            },
        }

    def _ask(self, prompt: str, image: Image.Image | bytes, product_id: str, attempt: int) -> ImageReview:
        if not self._key.reveal():
            raise ImageAPIError(ErrorClass.CONFIGURATION, "OPENAI_API_KEY is not set")
        params = self.request_params(prompt, image_data_url(image, self.image_px))
        headers = {"X-Client-Request-Id": client_request_id(product_id or QUERY_ID, attempt)}
        response = self.guarded(
            lambda: self._create(params, headers), subject=product_id or QUERY_ID, attempt=attempt
        )
        return self._review(response)

    def _create(self, params: dict[str, Any], headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """One `responses.create` call: the response and its headers (the limiter reads the announced limit)."""
        # The classified error is raised outside `except`, so no traceback chains the SDK's exception.
        try:
            raw = self.client().responses.with_raw_response.create(**params, extra_headers=headers)
            response = raw.parse()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a classified ImageAPIError
            error = _for_setting(classify_openai_error(exc, secrets=(self._key.reveal(),)), "image reviewer")
        else:
            return response, response_headers(raw.headers)
        raise error

    def _review(self, response: Any) -> ImageReview:
        status = getattr(response, "status", None)
        if status not in (None, "completed"):
            raise ImageAPIError(ErrorClass.INVALID_IMAGE, f"the review response is {status}, not completed")
        try:
            review = parse_review(response.output_text or "", reviewer=self.model)
        except ReviewFormatError as exc:
            raise ImageAPIError(ErrorClass.INVALID_IMAGE, str(exc)) from None
        usage = getattr(response, "usage", None)
        used = {
            key: int(getattr(usage, key, 0) or 0) for key in ("input_tokens", "output_tokens", "total_tokens")
        }
        return ImageReview(**{**review.__dict__, "usage": used})


class ImageReviewerResource(ConfigurableResource):
    """Base of the reviewer resources: assets depend on this and call `get_client()`."""

    def get_client(self) -> ImageReviewer:
        raise NotImplementedError


class OfflineImageReviewerResource(ImageReviewerResource):
    """Embedded default: colours from pixels, alt text and caption from the product's fields; says offline."""

    def get_client(self) -> OfflineImageReviewer:
        return OfflineImageReviewer()


class OpenAIImageReviewerResource(OpenAIAccountResource, ImageReviewerResource):
    """A vision model through the Responses API (`openai` SDK). Wire the key as `EnvVar("OPENAI_API_KEY")`."""

    model: str = Field(
        default=DEFAULT_REVIEW_MODEL,
        description="A current small vision model (e.g. gpt-5.4-mini, gpt-5.4-nano); part of the review "
        "fingerprint, so a change reviews again.",
    )
    timeout_s: float = Field(default=60.0, description="Seconds per review request before it is abandoned.")
    image_px: int = Field(
        default=REVIEW_IMAGE_PX, description="Longest edge in pixels of the JPEG variant sent for review."
    )
    # An int: Dagster's config has no float EnvVar.
    requests_per_minute: int | None = Field(
        default=DEFAULT_REVIEWS_PER_MINUTE,
        description="Reviews per minute every process sharing the coordinator may send with this key (the "
        "account's request limit of the model); the limiter paces by the lower of this and the limit the API "
        "announces. 0 or None: no pacing.",
    )

    def make_client(self) -> OpenAIImageReviewer:
        return OpenAIImageReviewer(
            api_key=self.api_key,
            base_url=self.base_url,
            model=self.model,
            timeout_s=self.timeout_s,
            image_px=self.image_px,
            requests_per_minute=self.requests_per_minute,
        )

    def get_client(self) -> OpenAIImageReviewer:
        return super().get_client()
