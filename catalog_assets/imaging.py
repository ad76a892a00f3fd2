"""Image work without any network: the offline product-card renderer, validation of image bytes, JPEG and
thumbnail encoding, and a perceptual hash for near-duplicate checks.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageStat, UnidentifiedImageError

OFFLINE_MODEL = "offline-card-v1"
JPEG_QUALITY = 85
THUMBNAIL_PX = 300
MAX_DECODE_PIXELS = 4096 * 4096

_NAMED_COLOURS = {
    "black": (35, 35, 38),
    "white": (236, 236, 232),
    "silver": (190, 192, 196),
    "gray": (128, 130, 134),
    "grey": (128, 130, 134),
    "red": (200, 40, 45),
    "blue": (40, 90, 190),
    "navy": (28, 40, 90),
    "green": (50, 140, 70),
    "yellow": (235, 200, 40),
    "orange": (235, 130, 30),
    "purple": (120, 60, 160),
    "pink": (230, 120, 160),
    "brown": (120, 80, 50),
    "beige": (215, 200, 170),
    "gold": (210, 170, 60),
    "teal": (30, 140, 140),
    "turquoise": (60, 190, 190),
    "tan": (200, 170, 120),
    "cream": (240, 230, 200),
    "charcoal": (60, 62, 66),
    "burgundy": (120, 30, 50),
    "olive": (110, 120, 50),
    "maroon": (110, 30, 40),
    "clear": (200, 225, 235),
    "transparent": (200, 225, 235),
    "rose": (220, 120, 140),
    "lavender": (180, 160, 220),
    "mint": (160, 220, 190),
    "coral": (240, 120, 100),
    "khaki": (190, 175, 130),
    "ivory": (245, 240, 225),
}

# category keyword → (shape, base hue); the shape tells the product kind at a glance
_CATEGORY_STYLES = [
    (("laundry", "detergent", "cleaning", "household"), "jug", 0.58),
    (("soap", "personal", "beauty", "hygiene", "skin", "hair", "bath"), "bottle", 0.9),
    (("monitor", "display", "tv", "television", "screen"), "monitor", 0.62),
    (("protector", "glare", "film"), "sheet", 0.52),
    (("school", "office", "stationery", "supplies", "paper"), "notebook", 0.12),
    (("electronic", "computer", "laptop", "phone", "audio", "camera", "network"), "device", 0.6),
    (("toy", "game", "puzzle"), "blocks", 0.02),
    (("grocery", "food", "snack", "beverage", "coffee"), "can", 0.08),
    (("pet",), "bowl", 0.3),
    (("sport", "outdoor", "fitness", "camping"), "ball", 0.35),
    (("automotive", "car", "tool"), "wrench", 0.0),
    (("clothing", "apparel", "shoe", "fashion"), "shirt", 0.75),
    (("kitchen", "home", "furniture", "garden", "decor"), "mug", 0.45),
]


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    stddev: float


class InvalidImage(ValueError):
    """The bytes are not a usable product image (undecodable, wrong size, blank)."""


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def product_colour(product: Mapping[str, Any], rng: random.Random) -> tuple[int, int, int]:
    attrs = product.get("attributes") or {}
    colour = (
        str(attrs.get("color") or attrs.get("colour") or "").lower() if isinstance(attrs, Mapping) else ""
    )
    for word in colour.replace("-", " ").split():
        if word in _NAMED_COLOURS:
            return _NAMED_COLOURS[word]
    h, s, v = rng.random(), 0.55 + rng.random() * 0.3, 0.55 + rng.random() * 0.35
    return tuple(int(c * 255) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def category_style(product: Mapping[str, Any]) -> tuple[str, float]:
    text = " ".join(str(product.get(k) or "") for k in ("subcategory", "category", "name")).lower()
    for words, shape, hue in _CATEGORY_STYLES:
        if any(w in text for w in words):
            return shape, hue
    return "box", 0.55


@lru_cache(maxsize=32)
def _background(size: int, hue: float) -> Image.Image:
    top = tuple(int(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.10, 0.98))
    bottom = tuple(int(c * 255) for c in colorsys.hsv_to_rgb((hue + 0.05) % 1, 0.22, 0.88))
    ramp = Image.linear_gradient("L").resize((size, size))
    bands = [ramp.point(lambda v, a=a, b=b: a + (b - a) * v // 255) for a, b in zip(top, bottom, strict=True)]
    return Image.merge("RGB", bands)


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word
        if len(lines) == max_lines:
            break
    if line and len(lines) < max_lines:
        lines.append(line)
    if len(lines) == max_lines and len(" ".join(lines)) < len(text):
        lines[-1] = lines[-1].rstrip(".,") + "…"
    return lines


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * factor))) for c in rgb)  # type: ignore[return-value]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour, rng) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dark, light = _shade(colour, 0.65), _shade(colour, 1.25)
    outline = (40, 40, 45)
    if shape == "jug":
        draw.rounded_rectangle(
            (x0 + w * 0.1, y0 + h * 0.2, x1 - w * 0.1, y1), 40, fill=colour, outline=outline, width=6
        )
        draw.rounded_rectangle((x0 + w * 0.55, y0 + h * 0.02, x1 - w * 0.2, y0 + h * 0.22), 12, fill=dark)
        draw.rounded_rectangle(
            (x0 + w * 0.2, y0 + h * 0.45, x1 - w * 0.2, y0 + h * 0.8), 20, fill=(250, 250, 250)
        )
    elif shape == "bottle":
        draw.rounded_rectangle(
            (x0 + w * 0.25, y0 + h * 0.3, x1 - w * 0.25, y1), 50, fill=colour, outline=outline, width=6
        )
        draw.rectangle((x0 + w * 0.44, y0 + h * 0.1, x1 - w * 0.44, y0 + h * 0.3), fill=dark)
        draw.rectangle((x0 + w * 0.36, y0, x1 - w * 0.36, y0 + h * 0.12), fill=(60, 60, 64))
        draw.rounded_rectangle((x0 + w * 0.3, y0 + h * 0.5, x1 - w * 0.3, y0 + h * 0.8), 16, fill=light)
    elif shape in ("monitor", "device"):
        sh = 0.62 if shape == "monitor" else 0.5
        draw.rounded_rectangle((x0, y0 + h * 0.05, x1, y0 + h * (0.05 + sh)), 18, fill=(30, 30, 34))
        draw.rectangle((x0 + 20, y0 + h * 0.05 + 20, x1 - 20, y0 + h * (0.05 + sh) - 20), fill=colour)
        draw.polygon(
            [(x0 + w * 0.2, y0 + h * 0.25), (x0 + w * 0.6, y0 + h * 0.1), (x0 + w * 0.8, y0 + h * 0.45)],
            fill=light,
        )
        draw.rectangle((x0 + w * 0.45, y0 + h * (0.05 + sh), x1 - w * 0.45, y0 + h * 0.85), fill=(70, 70, 74))
        draw.rounded_rectangle(
            (x0 + w * 0.25, y0 + h * 0.85, x1 - w * 0.25, y0 + h * 0.92), 10, fill=(50, 50, 54)
        )
    elif shape == "sheet":
        for i in range(3):
            off = i * 28
            draw.rounded_rectangle(
                (x0 + off, y0 + off, x1 - 80 + off, y1 - 80 + off),
                24,
                fill=_shade(colour, 1.0 + i * 0.12),
                outline=outline,
                width=4,
            )
        draw.line((x0 + 60, y0 + 100, x0 + w * 0.5, y0 + h * 0.4), fill=(255, 255, 255), width=14)
    elif shape == "notebook":
        draw.rectangle((x0 + w * 0.1, y0, x1 - w * 0.1, y1), fill=colour, outline=outline, width=6)
        for i in range(8):
            yy = y0 + h * 0.1 + i * h * 0.1
            draw.ellipse((x0 + w * 0.06, yy, x0 + w * 0.14, yy + 24), outline=(70, 70, 70), width=5)
        draw.rectangle((x0 + w * 0.3, y0 + h * 0.15, x1 - w * 0.2, y0 + h * 0.3), fill=(250, 250, 245))
        draw.polygon(
            [(x1 - w * 0.08, y0 + h * 0.4), (x1 + 20, y0 + h * 0.36), (x1 - w * 0.02, y0 + h * 0.9)],
            fill=dark,
        )
    elif shape == "blocks":
        for i in range(6):
            bx, by = x0 + (i % 3) * w / 3, y0 + h / 3 + (i // 3) * h / 3
            c = tuple(int(v * 255) for v in colorsys.hsv_to_rgb(rng.random(), 0.7, 0.9))
            draw.rectangle((bx + 8, by + 8, bx + w / 3 - 8, by + h / 3 - 8), fill=c, outline=outline, width=4)
        draw.ellipse((x0 + w * 0.35, y0, x0 + w * 0.65, y0 + h * 0.3), fill=colour)
    elif shape == "can":
        draw.rectangle((x0 + w * 0.2, y0 + 40, x1 - w * 0.2, y1 - 40), fill=colour)
        draw.ellipse((x0 + w * 0.2, y0, x1 - w * 0.2, y0 + 80), fill=light, outline=outline, width=4)
        draw.ellipse((x0 + w * 0.2, y1 - 80, x1 - w * 0.2, y1), fill=dark)
        draw.rectangle((x0 + w * 0.2, y0 + h * 0.4, x1 - w * 0.2, y0 + h * 0.65), fill=(250, 245, 235))
    elif shape == "bowl":
        draw.chord((x0, y0 + h * 0.2, x1, y1), 0, 180, fill=colour, outline=outline, width=6)
        draw.ellipse((x0, y0 + h * 0.45, x1, y0 + h * 0.75), fill=dark, outline=outline, width=6)
    elif shape == "ball":
        draw.ellipse((x0 + 30, y0 + 30, x1 - 30, y1 - 30), fill=colour, outline=outline, width=6)
        draw.arc((x0 + 30, y0 + h * 0.3, x1 - 30, y1 - h * 0.3), 0, 360, fill=(250, 250, 250), width=10)
        draw.ellipse((x0 + w * 0.25, y0 + h * 0.2, x0 + w * 0.4, y0 + h * 0.35), fill=light)
    elif shape == "wrench":
        draw.line(
            (x0 + w * 0.2, y1 - h * 0.2, x1 - w * 0.25, y0 + h * 0.25), fill=colour, width=int(w * 0.14)
        )
        draw.ellipse((x1 - w * 0.42, y0, x1, y0 + h * 0.42), fill=colour, outline=outline, width=6)
        draw.ellipse((x1 - w * 0.28, y0 + h * 0.12, x1 - w * 0.14, y0 + h * 0.28), fill=(245, 245, 245))
    elif shape == "shirt":
        draw.polygon(
            [
                (x0 + w * 0.3, y0),
                (x0, y0 + h * 0.2),
                (x0 + w * 0.12, y0 + h * 0.4),
                (x0 + w * 0.22, y0 + h * 0.33),
                (x0 + w * 0.22, y1),
                (x1 - w * 0.22, y1),
                (x1 - w * 0.22, y0 + h * 0.33),
                (x1 - w * 0.12, y0 + h * 0.4),
                (x1, y0 + h * 0.2),
                (x1 - w * 0.3, y0),
            ],
            fill=colour,
            outline=outline,
            width=6,
        )
        draw.chord((x0 + w * 0.36, y0 - h * 0.08, x1 - w * 0.36, y0 + h * 0.1), 0, 180, fill=dark)
    elif shape == "mug":
        draw.rounded_rectangle(
            (x0 + w * 0.15, y0 + h * 0.15, x1 - w * 0.3, y1), 30, fill=colour, outline=outline, width=6
        )
        draw.arc((x1 - w * 0.45, y0 + h * 0.35, x1 - w * 0.05, y0 + h * 0.75), -90, 90, fill=dark, width=30)
    else:
        draw.polygon(
            [(x0, y0 + h * 0.25), (x0 + w * 0.5, y0), (x1, y0 + h * 0.25), (x0 + w * 0.5, y0 + h * 0.5)],
            fill=light,
            outline=outline,
        )
        draw.polygon(
            [(x0, y0 + h * 0.25), (x0 + w * 0.5, y0 + h * 0.5), (x0 + w * 0.5, y1), (x0, y1 - h * 0.25)],
            fill=colour,
            outline=outline,
        )
        draw.polygon(
            [(x1, y0 + h * 0.25), (x0 + w * 0.5, y0 + h * 0.5), (x0 + w * 0.5, y1), (x1, y1 - h * 0.25)],
            fill=dark,
            outline=outline,
        )


def render_product_card(product: Mapping[str, Any], size: int = 1024) -> Image.Image:
    """A clean, deterministic product card drawn from the product's own fields (no network)."""
    pid = str(product.get("id") or "")
    rng = random.Random(_seed(pid + "|" + str(product.get("name") or "")))
    shape, hue = category_style(product)
    colour = product_colour(product, rng)
    img = _background(size, round(hue, 3)).copy()
    draw = ImageDraw.Draw(img)
    # Soft discs placed by the product id make every card's coarse structure its own, so that a
    # perceptual-hash duplicate check tells two products of one category apart.
    for _ in range(4):
        r = rng.randint(size // 8, size // 3)
        cx, cy = rng.randint(0, size), rng.randint(0, size)
        tint = tuple(
            int(c * 255)
            for c in colorsys.hsv_to_rgb(
                (hue + rng.random() * 0.2) % 1, 0.25 + rng.random() * 0.35, 0.55 + rng.random() * 0.4
            )
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tint)
    card = (int(size * 0.06), int(size * 0.06), int(size * 0.94), int(size * 0.94))
    draw.rounded_rectangle(card, radius=size // 24, fill=(252, 252, 250), outline=(215, 215, 210), width=3)
    for _ in range(3):
        r = rng.randint(size // 6, size // 3)
        cx = rng.randint(card[0] + r, card[2] - r)
        cy = rng.randint(card[1] + r, card[3] - r)
        tone = rng.randint(215, 245)
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r),
            fill=_shade(colour, 0.15) if tone < 222 else (tone, tone, tone - 4),
        )
    margin = int(size * 0.2)
    jitter = rng.randint(-size // 40, size // 40)
    _draw_shape(
        draw,
        shape,
        (margin + jitter, int(size * 0.12), size - margin + jitter, int(size * 0.64)),
        colour,
        rng,
    )
    name = str(product.get("name") or pid)
    brand = str(product.get("brand") or "")
    title_font, small_font = font(max(12, size // 19)), font(max(10, size // 32))
    y = int(size * 0.68)
    for line in _wrap(draw, name, title_font, int(size * 0.78), 2):
        draw.text((size // 2, y), line, font=title_font, fill=(30, 30, 34), anchor="ma")
        y += int(size * 0.065)
    details = " · ".join(
        x for x in (brand, str(product.get("subcategory") or product.get("category") or "")) if x
    )
    if details:
        draw.text((size // 2, y + size // 80), details[:60], font=small_font, fill=(95, 95, 100), anchor="ma")
    draw.rectangle((card[0], card[3] - size // 60, card[2], card[3]), fill=colour)
    return img


def encode_jpeg(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True, progressive=True)
    return buf.getvalue()


def make_thumbnail(img: Image.Image, px: int = THUMBNAIL_PX, quality: int = 80) -> bytes:
    thumb = img.convert("RGB")
    thumb.thumbnail((px, px), Image.Resampling.BICUBIC, reducing_gap=2.0)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Decode bytes fully (not just the header), refusing decompression bombs."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > MAX_DECODE_PIXELS:
                raise InvalidImage(f"image is {probe.width}x{probe.height}, too large to decode")
            probe.load()
            return probe.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidImage):
            raise
        raise InvalidImage(
            f"bytes do not decode as an image: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def check_image(
    img: Image.Image, expected: tuple[int, int] | None = None, min_stddev: float = 4.0
) -> ImageInfo:
    """Raise InvalidImage unless the image has the expected size and is not blank or one flat colour."""
    if expected and img.size != expected:
        raise InvalidImage(f"image is {img.width}x{img.height}, expected {expected[0]}x{expected[1]}")
    small = img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
    stddev = max(ImageStat.Stat(small).stddev)
    if stddev < min_stddev:
        raise InvalidImage(
            f"image is blank or a single flat colour (pixel stddev {stddev:.1f} < {min_stddev})"
        )
    return ImageInfo(img.width, img.height, img.format or "", stddev)


def parse_size(size: str) -> tuple[int, int] | None:
    """'1024x1024' → (1024, 1024); 'auto' → None (any size accepted)."""
    if "x" not in size:
        return None
    w, h = size.lower().split("x", 1)
    return int(w), int(h)


def dhash(img: Image.Image, hash_size: int = 8) -> int:
    """Difference hash (64 bits): near-identical pictures differ in few bits."""
    small = img.convert("L").resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS)
    px = small.load()
    bits = 0
    for y in range(hash_size):
        for x in range(hash_size):
            bits = (bits << 1) | (px[x, y] > px[x + 1, y])
    return bits


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
