"""Main-image figures from pixels on synthetic images: border whiteness, fill share, square and size."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from catalog_assets.image_figures import ImageFigures, measure, misses, summarize


def product_on(background: tuple[int, int, int], size=(1024, 1024), box=(112, 112, 912, 912)) -> Image.Image:
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).rectangle(box, fill=(30, 60, 200))
    return img


def test_pure_white_border_reads_as_all_white() -> None:
    f = measure(product_on((255, 255, 255)))
    assert (f.border_white_share, f.border_min, f.border_mean) == (1.0, 255, 255.0)
    assert f.square and f.min_edge_ok


def test_grey_border_is_not_white() -> None:
    f = measure(product_on((240, 240, 240)))
    assert f.border_white_share == 0.0
    assert f.border_min == 240 and f.border_mean == 240.0
    assert any("not pure white" in m for m in misses(f.columns()))


def test_nearly_white_border_counts_only_exact_rgb_255() -> None:
    img = product_on((255, 255, 255))
    ImageDraw.Draw(img).rectangle((0, 0, 1023, 4), fill=(254, 255, 255))  # the top 5 rows are off-white
    f = measure(img)
    ring = 10  # 1% of 1024, rounded
    border_pixels = 4 * 1024 * ring - 4 * ring * ring
    assert f.border_white_share == round(1 - 5 * 1024 / border_pixels, 4)
    assert f.border_min == 254


@pytest.mark.parametrize(
    ("box", "share"),
    [
        ((112, 112, 911, 911), 800 * 800 / 1024**2),  # a known 800 x 800 rectangle: 61 %
        ((51, 51, 972, 972), 922 * 922 / 1024**2),  # 922 x 922: 81 %
        ((0, 400, 1023, 599), 1024 * 200 / 1024**2),  # a full-width band
    ],
)
def test_fill_share_is_the_bounding_box_over_the_frame(box, share) -> None:
    f = measure(product_on((255, 255, 255), box=box))
    assert f.fill_share == round(share, 4)  # exact to the pixel


def test_fill_share_ignores_jpeg_noise_on_a_white_background() -> None:
    buf = io.BytesIO()
    product_on((255, 255, 255), box=(112, 112, 911, 911)).save(buf, "JPEG", quality=80)
    f = measure(Image.open(io.BytesIO(buf.getvalue())))
    assert f.fill_share == pytest.approx(800 * 800 / 1024**2, abs=0.02)


def test_an_empty_frame_fills_nothing_and_misses_the_fill() -> None:
    f = measure(Image.new("RGB", (1000, 1000), (255, 255, 255)))
    assert f.fill_share == 0.0
    assert any("fills 0%" in m for m in misses(f.columns()))


def test_non_square_and_small_images_are_named() -> None:
    f = measure(product_on((255, 255, 255), size=(1536, 1024), box=(40, 40, 1500, 990)))
    assert not f.square and f.min_edge_ok
    small = measure(product_on((255, 255, 255), size=(512, 512), box=(20, 20, 490, 490)))
    assert small.square and not small.min_edge_ok
    assert misses(f.columns()) == ["not square"]
    assert misses(small.columns()) == ["smaller than 1000 px"]


def test_transparency_reads_as_white() -> None:
    img = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((60, 60, 963, 963), fill=(200, 20, 20, 255))
    f = measure(img)
    assert f.border_white_share == 1.0 and f.fill_share == pytest.approx(904 * 904 / 1024**2, abs=0.01)


def test_figures_round_trip_through_object_metadata() -> None:
    f = measure(product_on((250, 250, 250)))
    meta = f.as_metadata()
    assert all(k.islower() and v.isascii() for k, v in meta.items())
    assert ImageFigures.from_metadata(meta) == f
    assert ImageFigures.from_metadata({"fig-width": "x"}) is None


def test_summary_counts_and_names_the_products_that_miss() -> None:
    good = {"product_id": "P-1", **measure(product_on((255, 255, 255), box=(40, 40, 983, 983))).columns()}
    grey = {"product_id": "P-2", **measure(product_on((200, 200, 200))).columns()}
    legacy = {"product_id": "P-3"}
    s = summarize([good, grey, legacy])
    assert (s.images, s.measured, s.white_background, s.filled, s.square_and_large) == (3, 2, 1, 1, 2)
    assert set(s.missing) == {"P-2", "P-3"}
    assert s.missing["P-3"] == ["no figures recorded"]
    assert any("not pure white" in m for m in s.missing["P-2"])
