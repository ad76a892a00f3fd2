"""Fast, distinct, non-blank images for the stand-in: a gradient, shapes and the prompt's words, all seeded
by the prompt's hash, so two prompts never look like near-duplicates and a run of thousands stays quick.
"""

from __future__ import annotations

import hashlib
import io
import random
import textwrap
import threading
from collections import OrderedDict
from functools import lru_cache

from PIL import Image, ImageDraw, ImageOps

from catalog_assets.imaging import font

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


#: bytes of full-size gradients kept (least recently used dropped first): small images mostly hit
GRADIENT_CACHE_BYTES = 96 * 1024 * 1024
_full: OrderedDict[tuple, Image.Image] = OrderedDict()
_full_bytes = 0
_full_lock = threading.Lock()


@lru_cache(maxsize=256)
def _small_gradient(angle: int, c1: tuple, c2: tuple) -> Image.Image:
    # Colourised at 192 px and scaled up: a few ms instead of a full-size colourise per image.
    base = Image.linear_gradient("L").rotate(angle, resample=Image.Resampling.BILINEAR, expand=False)
    return ImageOps.colorize(base.crop((32, 32, 224, 224)), c1, c2)


def _gradient(width: int, height: int, angle: int, c1: tuple, c2: tuple) -> Image.Image:
    """A fresh copy of the full-size gradient, from a cache bounded in bytes (not entries: one 2048x2048
    entry is 12 MB)."""
    global _full_bytes
    key = (width, height, angle, c1, c2)
    with _full_lock:
        cached = _full.get(key)
        if cached is not None:
            _full.move_to_end(key)
            return cached.copy()
    image = _small_gradient(angle, c1, c2).resize((width, height), Image.Resampling.BILINEAR)
    size = width * height * 3
    if size <= GRADIENT_CACHE_BYTES // 8:
        with _full_lock:
            if key not in _full:
                _full[key] = image.copy()
                _full_bytes += size
            while _full_bytes > GRADIENT_CACHE_BYTES:
                _, dropped = _full.popitem(last=False)
                _full_bytes -= dropped.width * dropped.height * 3
    return image


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def render_image(
    prompt: str,
    width: int,
    height: int,
    output_format: str = "jpeg",
    compression: int | None = None,
    index: int = 0,
) -> bytes:
    """Encode one `width`x`height` image for `prompt` in `output_format` (jpeg | png | webp)."""
    return encode(render_picture(prompt, width, height, index), output_format, compression)


def render_picture(prompt: str, width: int, height: int, index: int = 0) -> Image.Image:
    """The picture for `prompt` (not yet encoded)."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    rng = random.Random(digest)
    # Gradients come from a small palette so the cache stays warm; the shapes make every image unique.
    palette = random.Random(digest[0] % 16)
    image = _gradient(width, height, 45 * (digest[1] % 8), _colour(palette), _colour(palette))
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    for _ in range(7 + digest[2] % 5):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(unit // 14, unit // 4)
        box = (x - r, y - r, x + r, y + r)
        kind = rng.randrange(3)
        if kind == 0:
            draw.ellipse(box, fill=_colour(rng), outline=_colour(rng), width=max(2, unit // 128))
        elif kind == 1:
            draw.rectangle(box, fill=_colour(rng))
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=_colour(rng))
    text = "\n".join(textwrap.wrap(prompt, 34)[:4]) or "(empty prompt)"
    label_font = font(max(12, unit // 22))
    margin = unit // 20
    left, top, right, bottom = draw.multiline_textbbox((margin, margin), text, font=label_font)
    draw.rectangle((left - 12, top - 12, right + 12, bottom + 12), fill=(255, 255, 255))
    draw.multiline_text((margin, margin), text, font=label_font, fill=(20, 20, 20))
    draw.text((margin, height - margin - unit // 22), "stand-in image", font=label_font, fill=(255, 255, 255))
    return image


def encode(image: Image.Image, output_format: str, compression: int | None = None) -> bytes:
    out = io.BytesIO()
    pil_format = PIL_FORMATS[output_format]
    if pil_format == "PNG":
        image.save(out, "PNG", compress_level=1)
    else:
        quality = 85 if compression is None else max(1, min(100, compression))
        image.save(out, pil_format, quality=quality)
    return out.getvalue()
