"""The Responses API stand-in as an image reviewer: `input_text` + `input_image` (a data URL) in, a
`Response` out whose `output_text` is JSON filling the request's JSON schema (strict rules checked). The
review is deterministic: colours from the pixels, the product from the prompt's text, the visible text of
images this stand-in rendered itself (recognised by a difference hash), and a configurable verdict.

How the product is named (first match wins):
- product id: the `X-Client-Request-Id` header (`PROD-000123-a1-xyz`, as for images), else a
  `product id: X` / `product_id=X` line of the input text, else the first `ABC-000123`-like token;
- product name: a `product: X`, `product name: X`, `name: X` or `title: X` line of the input text, else
  the prompt of the recognised stand-in image, else "the product".
A product in `review_reject` (or drawn by `review_reject_rate`, a hash of the id) is judged as not shown
(in at most `review_reject_times` of its reviews, when that is set: then its retake passes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import re
import secrets
import textwrap
import time
from typing import Any

from PIL import Image, UnidentifiedImageError

from catalog_assets.standin.config import StandInConfig
from catalog_assets.standin.protocol import APIError, invalid

MAX_IMAGE_BYTES = 50 * 1024 * 1024
ALT_TEXT_MAX = 125  # what screen-reader guidance (and the review schema) allows
_PRODUCT_ID_LINE = re.compile(r"\bproduct[ _-]?id[ \t]*[:=][ \t]*([A-Za-z0-9._-]+)", re.IGNORECASE)
_PRODUCT_ID_TOKEN = re.compile(r"\b[A-Z]{2,10}-\d{3,}\b")
_NAME_LINE = re.compile(
    r"^[ \t]*(?:product(?:[ \t]+name)?|name|title)[ \t]*[:=][ \t]*(.+?)[ \t]*$", re.IGNORECASE | re.MULTILINE
)

#: Named colours the reviewer reports (nearest by RGB distance).
COLOURS = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "red": (200, 30, 40),
    "maroon": (120, 20, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "olive": (120, 120, 30),
    "green": (40, 160, 60),
    "teal": (20, 128, 128),
    "cyan": (60, 210, 220),
    "blue": (40, 80, 210),
    "navy": (20, 30, 100),
    "purple": (120, 50, 160),
    "pink": (240, 140, 180),
    "brown": (120, 70, 30),
    "beige": (225, 205, 165),
}


def dhash(image: Image.Image) -> int:
    """A 64-bit difference hash: survives resizing and re-encoding, differs between stand-in images."""
    small = image.convert("L").resize((9, 8), Image.Resampling.BILINEAR).tobytes()
    return sum(1 << i for i in range(64) if small[i + i // 8] > small[i + i // 8 + 1])


def label_text(prompt: str) -> str:
    """The text the stand-in's renderer draws onto an image for `prompt`."""
    return " ".join(textwrap.wrap(prompt, 34)[:4])


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, COLOURS[name], strict=True)))


def dominant_colours(image: Image.Image, top: int = 3) -> list[dict[str, Any]]:
    """The image's main colours, by share of pixels: [{"name", "hex", "share"}]."""
    small = image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    quantized = small.quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    shares: dict[str, float] = {}
    hexes: dict[str, str] = {}
    for count, index in sorted(quantized.getcolors() or [], reverse=True):
        rgb = tuple(palette[index * 3 : index * 3 + 3])
        name = colour_name(rgb)  # type: ignore[arg-type]
        shares[name] = shares.get(name, 0.0) + count / (64 * 64)
        hexes.setdefault(name, "#{:02x}{:02x}{:02x}".format(*rgb))
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    chosen = [kv for kv in ranked if kv[1] >= 0.05][:top] or ranked[:1]
    return [{"name": name, "hex": hexes[name], "share": round(share, 3)} for name, share in chosen]


def background_colour(image: Image.Image) -> str:
    small = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    border = [small.getpixel((x, y)) for x in range(32) for y in (0, 31)]
    border += [small.getpixel((x, y)) for y in range(32) for x in (0, 31)]
    names = [colour_name(p) for p in border]  # type: ignore[arg-type]
    return max(set(names), key=names.count)


# -- the request --------------------------------------------------------------------------------------


def parse_responses_request(config: StandInConfig, raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """The Responses create params the stand-in uses, validated (400 / 404 otherwise)."""
    if isinstance(raw, dict):
        req: Any = raw
    else:
        try:
            req = json.loads(raw or b"null")
        except ValueError:
            req = None
    if not isinstance(req, dict):
        raise invalid("", "We could not parse the JSON body of your request.", "invalid_json")
    model = req.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    if model not in config.responses_models:
        raise APIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    texts, images = _input_parts(req.get("input"))
    if isinstance(req.get("instructions"), str):
        texts.insert(0, req["instructions"])
    fmt = ((req.get("text") or {}).get("format")) or {"type": "text"}
    if fmt.get("type") == "json_schema":
        name = fmt.get("name")
        schema = fmt.get("schema")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise invalid(
                "text.format.name", "Invalid 'text.format.name': letters, digits, _ or -, at most 64."
            )
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise invalid(
                "text.format.schema",
                f"Invalid schema for response_format '{name}': schema must be a JSON Schema of 'type: \"object\"'.",
                "invalid_json_schema",
            )
        if fmt.get("strict"):
            problem = strict_problem(schema, ())
            if problem:
                raise invalid(
                    "text.format.schema",
                    f"Invalid schema for response_format '{name}': {problem}",
                    "invalid_json_schema",
                )
    elif fmt.get("type") not in ("text", "json_object"):
        raise invalid("text.format.type", f"Invalid 'text.format.type': {fmt.get('type')!r}.")
    return {"model": model, "texts": texts, "images": images, "format": fmt, "raw": req}


def _input_parts(value: Any) -> tuple[list[str], list[tuple[Image.Image, str, int]]]:
    texts: list[str] = []
    images: list[tuple[Image.Image, str, int]] = []
    if isinstance(value, str):
        return [value], images
    if not isinstance(value, list) or not value:
        raise invalid("input", "Missing required parameter: 'input'.", "missing_required_parameter")
    for i, item in enumerate(value):
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
            continue
        if not isinstance(content, list):
            raise invalid(f"input[{i}].content", f"Invalid 'input[{i}].content': expected a string or array.")
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            where = f"input[{i}].content[{j}]"
            if kind == "input_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "input_image":
                images.append(_image(part, where))
            else:
                raise invalid(where, f"Invalid '{where}': expected input_text with text or input_image.")
    return texts, images


def _image(part: dict[str, Any], where: str) -> tuple[Image.Image, str, int]:
    detail = part.get("detail") or "auto"
    if detail not in ("low", "high", "auto", "original"):
        raise invalid(f"{where}.detail", f"Invalid '{where}.detail': {detail!r}.")
    url = part.get("image_url")
    if not isinstance(url, str) or not url.startswith("data:image/"):
        raise invalid(
            f"{where}.image_url",
            "The stand-in needs images as data URLs (data:image/jpeg;base64,...); it fetches no URLs.",
            "invalid_image_url",
        )
    header, _, payload = url.partition(",")
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else b""
    except (binascii.Error, ValueError):
        data = b""
    if len(data) > MAX_IMAGE_BYTES:
        raise invalid(f"{where}.image_url", "The image is larger than 50 MB.", "image_too_large")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        raise invalid(
            f"{where}.image_url",
            "The image data you provided does not represent a valid image.",
            "invalid_image_format",
        ) from None
    return image, detail, len(data)


def strict_problem(schema: dict[str, Any], context: tuple[str, ...]) -> str | None:
    """What strict structured outputs refuse in `schema` (every object: all properties required, no
    additional properties), or None."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in props if k not in (schema.get("required") or [])]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
        for key, sub in props.items():
            if isinstance(sub, dict) and (problem := strict_problem(sub, (*context, "properties", key))):
                return problem
    if "array" in kinds and isinstance(schema.get("items"), dict):
        return strict_problem(schema["items"], (*context, "items"))
    for variant in schema.get("anyOf") or []:
        if isinstance(variant, dict) and (problem := strict_problem(variant, (*context, "anyOf"))):
            return problem
    return None


# -- the review ---------------------------------------------------------------------------------------


def product_of(texts: list[str], header_product: str | None) -> str | None:
    if header_product:
        return header_product
    joined = "\n".join(texts)
    if match := _PRODUCT_ID_LINE.search(joined):
        return match[1]
    if match := _PRODUCT_ID_TOKEN.search(joined):
        return match[0]
    return None


def rejected(config: StandInConfig, product: str | None, fallback_key: str) -> bool:
    if product is not None and product in config.review_reject:
        return True
    if config.review_reject_rate <= 0:
        return False
    key = f"{config.seed}:review:{product or fallback_key}"
    return (
        int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 < config.review_reject_rate
    )


def review_facts(
    config: StandInConfig,
    params: dict[str, Any],
    product: str | None,
    known_prompt: str | None,
    times_rejected: int = 0,
) -> dict[str, Any]:
    """What the reviewer says about the (first) image, keyed by the review schema's property names;
    `times_rejected`: this product's reviews rejected so far (see `review_reject_times`)."""
    joined = "\n".join(params["texts"])
    name_match = _NAME_LINE.search(joined)
    name = (
        name_match[1]
        if name_match
        else (known_prompt.split(",")[0].strip() if known_prompt else "the product")
    )
    name = name[:80]
    image = params["images"][0][0] if params["images"] else None
    colours = dominant_colours(image) if image is not None else []
    background = background_colour(image) if image is not None else "plain"
    visible = label_text(known_prompt) if known_prompt else ""
    fallback_key = hashlib.sha256(image.tobytes()).hexdigest() if image is not None else joined
    refused = rejected(config, product, fallback_key) and (
        config.review_reject_times is None or times_rejected < config.review_reject_times
    )
    names = [c["name"] for c in colours]
    tones = ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names else "neutral"
    if refused:
        alt = f"Photo that does not clearly show {name}; mostly {tones} on a {background} background"
        caption = f"The image does not clearly show {name}: it appears to show a different object in {tones}."
    else:
        alt = f"{name} on a {background} background, in {tones} tones"
        caption = f"{name} pictured in {tones} tones on a {background} background."
        if visible:
            caption += f' The image carries the text "{visible[:120]}".'
    return {
        "product_id": product,
        "alt_text": shorten(alt, ALT_TEXT_MAX),
        "product_name": name,
        "shows_product": not refused,
        "approved": not refused,
        "issues": [config.review_reject_issue] if refused else [],
        "visible_text": visible,
        "caption": caption,
        "description": caption,
        "dominant_colours": colours,
        "dominant_colors": colours,
        "colours": colours,
        "colors": colours,
        "background": background,
        "confidence": 0.35 if refused else 0.9,
        "rejected": refused,
    }


def fill(schema: dict[str, Any], fact: Any) -> Any:
    """An instance of `schema` built from `fact` (coerced), defaults where the fact is missing."""
    if isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        variants = [v for v in schema["anyOf"] if isinstance(v, dict)]
        if fact is None and any(v.get("type") == "null" for v in variants):
            return None
        schema = next((v for v in variants if v.get("type") != "null"), variants[0])
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "enum" in schema:
        options = schema["enum"]
        return fact if fact in options else options[0]
    if "null" in kinds and fact is None:
        return None
    if "object" in kinds:
        facts = fact if isinstance(fact, dict) else {}
        return {key: fill(sub, facts.get(key)) for key, sub in (schema.get("properties") or {}).items()}
    if "array" in kinds:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        values = list(fact) if isinstance(fact, (list, tuple)) else []
        if "enum" in items:
            options = items["enum"]
            mapped = [v if v in options else ("other" if "other" in options else options[0]) for v in values]
            values = list(dict.fromkeys(mapped))
        result = [fill(items, v) for v in values][: schema.get("maxItems", len(values))]
        return result
    if "boolean" in kinds:
        return bool(fact)
    if "integer" in kinds:
        return int(fact) if isinstance(fact, (int, float)) and not isinstance(fact, bool) else 0
    if "number" in kinds:
        return float(fact) if isinstance(fact, (int, float)) and not isinstance(fact, bool) else 0.0
    if isinstance(fact, dict):
        fact = fact.get("name", "")
    text = "" if fact is None else str(fact)
    limit = schema.get("maxLength")
    return shorten(text, limit) if isinstance(limit, int) else text


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters (an ellipsis marks the cut)."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;: ")
    return (cut or text[: limit - 1]) + "…"


def violations(schema: dict[str, Any], value: Any, path: str = "$") -> list[str]:
    """Where `value` breaks `schema` (type, enum, required, additionalProperties, maxLength, maxItems)."""
    if isinstance(schema.get("anyOf"), list):
        options = [violations(v, value, path) for v in schema["anyOf"] if isinstance(v, dict)]
        return [] if any(not o for o in options) else options[0]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kinds and not any(checks.get(k, lambda v: True)(value) for k in kinds):
        return [f"{path}: expected {kinds}, got {type(value).__name__}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in enum")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        found += [f"{path}: missing {k!r}" for k in schema.get("required") or [] if k not in value]
        if schema.get("additionalProperties") is False:
            found += [f"{path}: unexpected {k!r}" for k in value if k not in props]
        for key, sub in props.items():
            if key in value and isinstance(sub, dict):
                found += violations(sub, value[key], f"{path}.{key}")
    if isinstance(value, list):
        if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
            found.append(f"{path}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                found += violations(schema["items"], item, f"{path}[{i}]")
    if (
        isinstance(value, str)
        and isinstance(schema.get("maxLength"), int)
        and len(value) > schema["maxLength"]
    ):
        found.append(f"{path}: longer than {schema['maxLength']}")
    return found


def image_tokens(image: Image.Image, detail: str) -> int:
    """Input tokens an image costs: 85 at low detail, plus 170 per 512-px tile otherwise."""
    if detail == "low":
        return 85
    width, height = image.size
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return 85 + 170 * tiles


def response_body(params: dict[str, Any], output_text: str) -> dict[str, Any]:
    """A `Response` the SDK parses, with `output_text` as its single message's text."""
    text_tokens = sum(max(1, round(len(t.split()) * 1.3)) for t in params["texts"])
    input_tokens = text_tokens + sum(image_tokens(img, detail) for img, detail, _ in params["images"])
    output_tokens = max(1, len(output_text) // 4)
    now = time.time()
    fmt = params["format"]
    return {
        "id": f"resp_{secrets.token_hex(24)}",
        "object": "response",
        "created_at": int(now),
        "completed_at": int(now),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": params["raw"].get("instructions"),
        "max_output_tokens": params["raw"].get("max_output_tokens"),
        "metadata": params["raw"].get("metadata") or {},
        "model": params["model"],
        "output": [
            {
                "id": f"msg_{secrets.token_hex(24)}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": output_text, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": params["raw"].get("store", True),
        "temperature": 1.0,
        "text": {"format": fmt},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "user": None,
    }


def output_for(params: dict[str, Any], facts: dict[str, Any]) -> str:
    fmt = params["format"]
    if fmt.get("type") == "json_schema":
        value = fill(fmt["schema"], facts)
        problems = violations(fmt["schema"], value)
        if problems:
            raise RuntimeError(f"the review does not fit the request's schema: {problems[:3]}")
        return json.dumps(value, ensure_ascii=False)
    if fmt.get("type") == "json_object":
        return json.dumps(
            {k: facts[k] for k in ("shows_product", "issues", "visible_text", "alt_text", "caption")}
        )
    return facts["caption"]
