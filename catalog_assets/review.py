"""The image review as data: the record a reviewer returns, its strict JSON schema and prompt, validation of
a model's answer, colours from pixels, the offline description built from a product's fields, and the
retake instructions that address each issue a review can find. Pure: no network, no Dagster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from PIL import Image

from catalog_assets.prompts import clean

Issue = Literal[
    "wrong_object",
    "garbled_text",
    "person",
    "multiple_products",
    "watermark",
    "off_white_background",
    "other",
]
ISSUES: tuple[Issue, ...] = get_args(Issue)
ImageKind = Literal["card", "photo"]

ALT_TEXT_MAX = 125  # screen-reader guidance: longer alt text is cut off or skipped
CAPTION_MAX = 400
VISIBLE_TEXT_MAX = 500
MAX_COLOURS = 3
REVIEW_SCHEMA_NAME = "image_review"
OFFLINE_REVIEWER = "offline-reviewer-v1"
REVIEW_PROMPT_VERSION = "review-v1"  # part of a review's fingerprint: a new prompt reviews again on purpose

#: The Responses API `text.format.schema`: strict structured outputs need every object closed
#: (`additionalProperties: false`) and every property required. Lengths are asked for in descriptions and
#: enforced by `parse_review`, because strict mode does not promise string-length keywords.
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["shows_product", "issues", "visible_text", "alt_text", "caption", "dominant_colours"],
    "properties": {
        "shows_product": {
            "type": "boolean",
            "description": "True only if the image clearly shows the named product itself.",
        },
        "issues": {
            "type": "array",
            "items": {"type": "string", "enum": list(ISSUES)},
            "description": "Every problem that makes the image unfit for the product page; empty if none.",
        },
        "visible_text": {
            "type": "string",
            "description": "Text legible in the image, verbatim; empty if none.",
        },
        "alt_text": {
            "type": "string",
            "description": f"Alt text for a screen reader, at most {ALT_TEXT_MAX} characters, describing "
            "what the image shows; do not start with 'Image of'.",
        },
        "caption": {
            "type": "string",
            "description": "One or two sentences describing the image for product search.",
        },
        "dominant_colours": {
            "type": "array",
            "items": {"type": "string"},
            "description": f"Up to {MAX_COLOURS} main colours of the product as plain colour names.",
        },
    },
}

_TEMPLATE_ALT = re.compile(r"^\s*image of\b", re.IGNORECASE)


class ReviewFormatError(ValueError):
    """A reviewer's answer is not a usable review (not JSON, wrong shape, wrong types)."""


@dataclass(frozen=True)
class ImageReview:
    """What a reviewer says about one stored image. `approved` means: keep it, no retake."""

    shows_product: bool
    issues: tuple[Issue, ...]
    visible_text: str
    alt_text: str
    caption: str
    dominant_colours: tuple[str, ...]
    #: who reviewed: the vision model's name, or `OFFLINE_REVIEWER`
    reviewer: str
    #: True when no vision model looked at the image (the verdict comes from pixels and fields)
    offline: bool
    usage: Mapping[str, int] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        return self.shows_product and not self.issues

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (store metadata, manifest rows); `from_dict` reads it back."""
        return {
            "shows_product": self.shows_product,
            "issues": list(self.issues),
            "visible_text": self.visible_text,
            "alt_text": self.alt_text,
            "caption": self.caption,
            "dominant_colours": list(self.dominant_colours),
            "reviewer": self.reviewer,
            "offline": self.offline,
            "approved": self.approved,
            "usage": dict(self.usage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageReview:
        review = parse_review(data, reviewer=str(data.get("reviewer") or ""))
        usage = data.get("usage") if isinstance(data.get("usage"), Mapping) else {}
        return ImageReview(
            **{**review.__dict__, "offline": bool(data.get("offline")), "usage": dict(usage or {})}
        )


# -- the prompt and the answer ---------------------------------------------------------------------------


def review_prompt(product: Mapping[str, Any]) -> str:
    """The review instruction for one product. The `Product id:` / `Product:` lines name the product (the
    stand-in reads them); catalog text is quoted data, never instructions."""
    name = clean(product.get("name"), 120)
    kind = clean(product.get("subcategory") or product.get("category"), 60)
    brand = clean(product.get("brand"), 40)
    colour = product_colour_name(product)
    lines = [
        "You review a product image for an online catalog before it is published.",
        f"Product id: {clean(product.get('id'), 64)}",
        f"Product: {name}",
    ]
    if brand:
        lines.append(f"Brand: {brand}")
    if kind:
        lines.append(f"Category: {kind}")
    if colour:
        lines.append(f"Colour: {colour}")
    lines.append(
        "Say whether the image clearly shows this product (shows_product), and list every issue: "
        "wrong_object (a different object), garbled_text (misspelt or nonsense lettering), person (people "
        "or body parts), multiple_products (more than one unit or product), watermark, off_white_background "
        "(the background is not plain white), other. Copy legible text into visible_text. Write alt_text "
        f"(at most {ALT_TEXT_MAX} characters, what a screen-reader user needs, not 'Image of ...'), a "
        "caption of one or two sentences for product search, and up to three dominant colours by name."
    )
    return "\n".join(lines)


def parse_review(
    answer: str | bytes | Mapping[str, Any], *, reviewer: str, offline: bool = False
) -> ImageReview:
    """The review in a model's JSON answer, checked against `REVIEW_SCHEMA`; `ReviewFormatError` names the
    first problem. An over-long alt text or caption is cut at a word boundary rather than refused."""
    if isinstance(answer, Mapping):
        data: Any = answer
    else:
        try:
            data = json.loads(answer)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReviewFormatError(f"review answer is not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise ReviewFormatError(f"review answer is a JSON {type(data).__name__}, expected an object")
    missing = [key for key in REVIEW_SCHEMA["required"] if key not in data]
    if missing:
        raise ReviewFormatError(f"review answer lacks {', '.join(repr(k) for k in missing)}")
    if not isinstance(data["shows_product"], bool):
        raise ReviewFormatError("review answer: 'shows_product' must be true or false")
    issues = _string_list(data["issues"], "issues")
    unknown = [issue for issue in issues if issue not in ISSUES]
    if unknown:
        raise ReviewFormatError(f"review answer: unknown issue {unknown[0]!r} (known: {', '.join(ISSUES)})")
    texts = {}
    for key in ("visible_text", "alt_text", "caption"):
        if not isinstance(data[key], str):
            raise ReviewFormatError(f"review answer: {key!r} must be a string")
        texts[key] = " ".join(data[key].split())
    if not texts["alt_text"]:
        raise ReviewFormatError("review answer: 'alt_text' is empty")
    if not texts["caption"]:
        raise ReviewFormatError("review answer: 'caption' is empty")
    colours = [
        " ".join(c.lower().split()) for c in _string_list(data["dominant_colours"], "dominant_colours")
    ]
    return ImageReview(
        shows_product=data["shows_product"],
        issues=tuple(dict.fromkeys(issues)),  # type: ignore[arg-type]
        visible_text=shorten(texts["visible_text"], VISIBLE_TEXT_MAX),
        alt_text=shorten(texts["alt_text"], ALT_TEXT_MAX),
        caption=shorten(texts["caption"], CAPTION_MAX),
        dominant_colours=tuple(dict.fromkeys(c for c in colours if c))[:MAX_COLOURS],
        reviewer=reviewer,
        offline=offline,
    )


def _string_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ReviewFormatError(f"review answer: {key!r} must be a list of strings")
    return value


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.- ")
    return (cut or text[: limit - 1]) + "…"


def is_template_alt_text(alt_text: str) -> bool:
    """True for the catalog's placeholder alt text ("Image of <name>") or an empty one."""
    return not alt_text.strip() or bool(_TEMPLATE_ALT.match(alt_text))


# -- colours ---------------------------------------------------------------------------------------------

#: Plain colour names a shopper searches for, by a representative RGB (nearest wins).
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 22),
    "grey": (128, 128, 128),
    "silver": (192, 192, 196),
    "red": (200, 35, 40),
    "maroon": (115, 25, 35),
    "orange": (240, 135, 30),
    "yellow": (240, 215, 45),
    "olive": (115, 120, 40),
    "green": (45, 150, 65),
    "teal": (25, 135, 135),
    "blue": (40, 85, 200),
    "navy": (25, 35, 95),
    "purple": (120, 55, 160),
    "pink": (235, 130, 170),
    "brown": (120, 75, 40),
    "beige": (220, 200, 165),
}


def colour_name(rgb: Sequence[int]) -> str:
    """The nearest plain colour name of an RGB triple."""
    r, g, b = rgb[:3]
    return min(COLOUR_NAMES, key=lambda n: (r - COLOUR_NAMES[n][0]) ** 2 + (g - COLOUR_NAMES[n][1]) ** 2
               + (b - COLOUR_NAMES[n][2]) ** 2)  # fmt: skip


def dominant_colours(image: Image.Image, top: int = MAX_COLOURS, min_share: float = 0.04) -> list[str]:
    """The image's main colour names by share of pixels: a 64 px thumbnail quantized to 8 colours, each
    named, shares of one name added up; names under `min_share` are dropped (at least one is kept)."""
    small = image.convert("RGB")
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    quantized = small.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    total = small.width * small.height
    shares: dict[str, float] = {}
    for count, index in quantized.getcolors() or []:
        name = colour_name(palette[index * 3 : index * 3 + 3])
        shares[name] = shares.get(name, 0.0) + count / total
    ranked = sorted(shares, key=lambda name: -shares[name])
    return [name for name in ranked if shares[name] >= min_share][:top] or ranked[:1]


def product_colour_name(product: Mapping[str, Any]) -> str:
    """The product's colour as its catalog attributes give it ("" when none)."""
    attrs = product.get("attributes")
    if not isinstance(attrs, Mapping):
        return ""
    return plain_text(attrs.get("color") or attrs.get("colour") or "", 40)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain_text(value: Any, limit: int) -> str:
    """Catalog text for a description: one line, control and bidi characters removed, quotes kept (27" is
    inches), capped at a word."""
    text = " ".join(_CONTROL.sub(" ", str(value or "")).split())
    return shorten(text, limit)


# -- the offline description -----------------------------------------------------------------------------


def offline_description(product: Mapping[str, Any], kind: ImageKind) -> tuple[str, str]:
    """(alt text, caption) from the product's own fields, saying honestly what the image is: an illustrated
    card drawn from the fields (`card`) or a product photo nobody has described yet (`photo`)."""
    name = plain_text(product.get("name") or product.get("id"), 120) or "product"
    brand = plain_text(product.get("brand"), 40)
    category = plain_text(product.get("category"), 60)
    subcategory = plain_text(product.get("subcategory"), 60)
    colour = product_colour_name(product)
    titled = name if not brand or brand.lower() in name.lower() else f"{brand} {name}"
    colour_part = f", {colour.lower()}" if colour and colour.lower() not in name.lower() else ""
    kind_part = subcategory or category
    lead = "Illustrated product card" if kind == "card" else "Product photo"
    alt = f"{lead}: {titled}{colour_part}" + (f" ({kind_part})" if kind_part else "")
    if len(alt) > ALT_TEXT_MAX:
        alt = shorten(f"{lead}: {titled}{colour_part}", ALT_TEXT_MAX)
    where = ", ".join(x for x in dict.fromkeys((subcategory, category)) if x)
    if kind == "card":
        first = f"An illustrated product card showing the name {name}" + (f" by {brand}" if brand else "")
        first += f", in the {kind_part} category" if kind_part else ""
    else:
        first = f"A product photo of {titled}" + (f" ({where})" if where else "")
    details = [f"colour {colour.lower()}"] if colour else []
    details += _attribute_phrases(product)
    caption = first + "." + (f" Details: {', '.join(details)}." if details else "")
    return alt, shorten(caption, CAPTION_MAX)


_DETAIL_KEYS = (
    "size",
    "material",
    "scent",
    "flavor",
    "flavour",
    "style",
    "pattern",
    "finish",
    "type",
    "feature",
)


def _attribute_phrases(product: Mapping[str, Any], limit: int = 3) -> list[str]:
    attrs = product.get("attributes")
    if not isinstance(attrs, Mapping):
        return []
    phrases = []
    for key in _DETAIL_KEYS:
        value = plain_text(attrs.get(key) or "", 40)
        if value:
            phrases.append(f"{key} {value.lower()}")
        if len(phrases) == limit:
            break
    return phrases


# -- retakes ---------------------------------------------------------------------------------------------

#: What a retake prompt asks for, per issue found.
RETAKE_INSTRUCTIONS: dict[Issue, str] = {
    "wrong_object": "Show exactly the product named above, not a different or generic object.",
    "garbled_text": "No lettering except short, correctly spelt brand text; no invented words or labels.",
    "person": "No people, hands or body parts: the product alone.",
    "multiple_products": "Show only one product, a single unit, no second item or duplicates.",
    "watermark": "No watermark, signature, stock-photo mark or text overlay.",
    "off_white_background": "A plain pure-white (#FFFFFF) seamless background with no props or scenery.",
    "other": "A clean, accurate catalog photo of this one product, true to its description.",
}


def retake_suffix(issues: Iterable[str], *, reason: str = "", number: int = 1) -> str:
    """The lines appended to a generation prompt to fix `issues` (known ones, in `ISSUES` order); a
    not-shown verdict with no issue listed reads as `wrong_object`. A person's `reason` is quoted as a note
    (catalog-safe text, never instructions of its own); `number` > 1 names the retake, so each retake has
    its own prompt fingerprint."""
    found = set(issues) & set(ISSUES) or {"wrong_object"}
    steps = [RETAKE_INSTRUCTIONS[issue] for issue in ISSUES if issue in found]
    label = "Retake" if number <= 1 else f"Retake {number}"
    note = clean(reason, 200)
    by = f" A reviewer noted: '{note}'." if note else ""
    return f"{label}: the previous image was rejected in review.{by} " + " ".join(steps)


def retake_prompt(prompt: str, review: ImageReview) -> str:
    """`prompt` with the retake lines for `review`'s issues."""
    return f"{prompt}\n{retake_suffix(review.issues)}"
