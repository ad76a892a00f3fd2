"""The offline product card: the right pictogram from whole words, text a shopper can read (never over
decoration, contrast from pixels), graceful shortening, and distinct cards for the near-duplicate check."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from catalog_assets import imaging
from catalog_assets.cards import (
    ELLIPSIS,
    OFFLINE_MODEL,
    PICTOGRAMS,
    PLACEHOLDER_NOTE,
    _fonts,
    contrast_ratio,
    pictogram_for,
    relative_luminance,
    render_card,
    render_product_card,
    shorten,
    table_pictograms,
)
from catalog_assets.checks.thresholds import CheckThresholds
from catalog_assets.imaging import DHASH_SIZE
from catalog_assets_tests.card_support import box_figures, layout_problems, luminance

REPO = Path(__file__).resolve().parents[1]
BUNDLED = json.loads((REPO / "data" / "catalog.json").read_text())

# What a person would accept for each category/subcategory: the bundled catalog's 63 pairs, then the pairs
# of the real sample catalog of the search demo and of the test fixtures.
EXPECTED = {
    ("Automotive", "Car Care & Interior"): "car",
    ("Automotive", "Oils & Fluids"): "jug",
    ("Automotive", "Tools & Electronics"): "wrench",
    ("Baby", "Baby Care & Gear"): "baby_bottle",
    ("Baby", "Diapering"): "baby_bottle",
    ("Beauty & Personal Care", "Bath & Body"): "pump_bottle",
    ("Beauty & Personal Care", "Hair Care"): "pump_bottle",
    ("Beauty & Personal Care", "Makeup"): "lipstick",
    ("Beauty & Personal Care", "Oral Care"): "toothbrush",
    ("Beauty & Personal Care", "Personal Hygiene"): "pump_bottle",
    ("Beauty & Personal Care", "Skincare"): "jar",
    ("Clothing", "Activewear & Outerwear"): "jacket",
    ("Clothing", "Kids'"): "tshirt",
    ("Clothing", "Men's"): "tshirt",
    ("Clothing", "Shoes"): "shoe",
    ("Clothing", "Women's"): "tshirt",
    ("Electronics", "Accessories"): "plug",
    ("Electronics", "Audio"): "headphones",
    ("Electronics", "Computers"): "laptop",
    ("Electronics", "Monitors"): "monitor",
    ("Electronics", "Networking"): "router",
    ("Electronics", "Smartphones"): "phone",
    ("Electronics", "Storage"): "drive",
    ("Electronics", "TVs"): "tv",
    ("Grocery", "Baking"): "grocery_bag",
    ("Grocery", "Beverages"): "cup",
    ("Grocery", "Breakfast"): "bowl",
    ("Grocery", "Pantry"): "can",
    ("Grocery", "Snacks"): "grocery_bag",
    ("Health & Household", "Health Care"): "first_aid",
    ("Health & Household", "Household Supplies"): "paper_roll",
    ("Home & Kitchen", "Appliances"): "kettle",
    ("Home & Kitchen", "Bakeware"): "pan",
    ("Home & Kitchen", "Bath"): "towel",
    ("Home & Kitchen", "Bedding"): "bed",
    ("Home & Kitchen", "Cleaning"): "jug",
    ("Home & Kitchen", "Cookware"): "pan",
    ("Home & Kitchen", "Decor"): "house",
    ("Home & Kitchen", "Dining"): "plate",
    ("Home & Kitchen", "Furniture"): "chair",
    ("Home & Kitchen", "Storage & Organization"): "box",
    ("Office & School Supplies", "Binders & Folders"): "folder",
    ("Office & School Supplies", "Desk Accessories"): "pencil",
    ("Office & School Supplies", "Office Electronics"): "calculator",
    ("Office & School Supplies", "Paper Products"): "notebook",
    ("Office & School Supplies", "School Supplies"): "pencil",
    ("Office & School Supplies", "Writing Instruments"): "pencil",
    ("Patio, Lawn & Garden", "Gardening"): "plant",
    ("Pet Supplies", "Cats"): "paw",
    ("Pet Supplies", "Dogs"): "paw",
    ("Pet Supplies", "Fish & Small Animals"): "paw",
    ("Pet Supplies", "Pet Beds"): "paw",
    ("Pet Supplies", "Pet Toys"): "bone",
    ("Sports & Outdoors", "Cycling"): "bicycle",
    ("Sports & Outdoors", "Exercise & Fitness"): "dumbbell",
    ("Sports & Outdoors", "Outdoor Recreation"): "tent",
    ("Sports & Outdoors", "Team Sports"): "ball",
    ("Sports & Outdoors", "Water & Winter Sports"): "goggles",
    ("Tools & Home Improvement", "Lighting & Electrical"): "bulb",
    ("Tools & Home Improvement", "Tools"): "wrench",
    ("Toys & Games", "Building & Educational Toys"): "blocks",
    ("Toys & Games", "Dolls & Action Figures"): "teddy",
    ("Toys & Games", "Games & Puzzles"): "dice",
    ("Toys & Games", "Outdoor Play"): "kite",
    # the search demo's real sample catalog
    ("Automotive", "Electronics"): "wrench",
    ("Automotive", "Motorcycle"): "tire",
    ("Automotive", "Parts & Accessories"): "wrench",
    ("Automotive", "Tires & Wheels"): "tire",
    ("Automotive", "Tools & Equipment"): "wrench",
    ("Beauty & Personal Care", "Health Care"): "first_aid",
    ("Clothing", "Activewear"): "tshirt",
    ("Clothing", "Outerwear"): "jacket",
    ("Grocery", "Canned Goods"): "can",
    ("Grocery", "Dairy"): "carton",
    ("Grocery", "Meat & Seafood"): "fish",
    ("Grocery", "Produce"): "apple",
    ("Pet Supplies", "Reptiles"): "paw",
    ("Pet Supplies", "Small Animals"): "paw",
    ("Sports & Outdoors", "Water Sports"): "goggles",
    ("Sports & Outdoors", "Winter Sports"): "goggles",
    ("Toys & Games", "Action Figures"): "teddy",
    ("Toys & Games", "Dolls"): "teddy",
    ("Toys & Games", "Educational Toys"): "blocks",
    ("Toys & Games", "Games"): "dice",
    ("Toys & Games", "Stuffed Animals"): "teddy",
    # the fixture catalog (catalog_assets_tests/fixtures/sample_catalog.json)
    ("Automotive", "Batteries"): "plug",
    ("Automotive", "Car Care"): "car",
    ("Automotive", "Floor Mats"): "car",
    ("Beauty & Personal Care", "Fragrances"): "spray",
    ("Clothing", "Men'"): "tshirt",
    ("Clothing", "Rain Jackets"): "jacket",
    ("Clothing", "Socks"): "tag",
    ("Electronics", "Chargers"): "plug",
    ("Electronics", "Tablets"): "screen",
    ("Grocery", "Cereals"): "bowl",
    ("Grocery", "Coffee"): "cup",
    ("Grocery", "Pasta & Grains"): "jar",
    ("Grocery", "Spices"): "jar",
    ("Home & Kitchen", "Kitchen Gadgets"): "pan",
    ("Home & Kitchen", "Rugs"): "house",
    ("Home & Kitchen", "Storage Bins"): "box",
    ("Office & School Supplies", "Desk Organizers"): "pencil",
    ("Office & School Supplies", "Glasses"): "tag",
    ("Office & School Supplies", "Notebooks"): "notebook",
    ("Pet Supplies", "Aquariums"): "fish",
    ("Pet Supplies", "Cat Litter"): "paw",
    ("Sports & Outdoors", "Bicycles"): "bicycle",
    ("Sports & Outdoors", "Fishing"): "fish",
    ("Sports & Outdoors", "Water Bottles"): "jug",
    ("Sports & Outdoors", "Yoga Mats"): "dumbbell",
    ("Toys & Games", "Board Games"): "dice",
    ("Toys & Games", "Building Sets"): "blocks",
    ("Toys & Games", "Plush Toys"): "teddy",
    ("Toys & Games", "Puzzles"): "dice",
    # fixture-style spellings: a category without subcategory, a clipped apostrophe
    ("Pet Supplies", ""): "paw",
    ("Baby Care & Gear", ""): "baby_bottle",
    ("Clothing", "Women'"): "tshirt",
    ("Clothing", "WOMENS"): "tshirt",
}


def catalog_pairs(rows: list[dict]) -> set[tuple[str, str]]:
    return {(str(r.get("category") or ""), str(r.get("subcategory") or "")) for r in rows}


def test_every_category_pair_of_the_bundled_and_fixture_catalogs_has_an_expected_pictogram() -> None:
    pairs = catalog_pairs(BUNDLED)
    assert len({c for c, _ in pairs}) == 14
    for fixture in sorted((REPO / "catalog_assets_tests" / "fixtures").glob("*catalog*.json")):
        data = json.loads(fixture.read_text())
        rows = data if isinstance(data, list) else data.get("products", [])
        pairs |= catalog_pairs([r for r in rows if isinstance(r, dict)])
    assert pairs - set(EXPECTED) == set()


@pytest.mark.parametrize(("category", "subcategory"), sorted(EXPECTED))
def test_category_table_chooses_the_expected_pictogram(category: str, subcategory: str) -> None:
    # a name with no product noun in it: the table entry alone decides
    product = {"name": "Everyday Item", "category": category, "subcategory": subcategory}
    assert pictogram_for(product) == EXPECTED[(category, subcategory)]


@pytest.mark.parametrize(
    ("name", "category", "subcategory", "expected"),
    [
        # the defects seen on the bundled catalog: substrings chose these pictograms
        (
            "Adjustable Dog Harness - Medium, Red",
            "Pet Supplies",
            "Dogs",
            "paw",
        ),  # was a notebook ("supplies")
        (
            "Essential Diaper Rash Cream, Pink",
            "Baby",
            "Baby Care & Gear",
            "baby_bottle",
        ),  # was a wrench ("car")
        (
            "Women's Cardigan Sweater, Heather Gray, S",
            "Clothing",
            "Women's",
            "jacket",
        ),  # was a wrench ("car")
        ("Canvas Sneakers - Light Blue", "Clothing", "Shoes", "shoe"),  # was a T-shirt
        ("Kids Rain Jacket, Lime Green, Size 14", "Clothing", "Kids'", "jacket"),  # was a T-shirt
        ("Compact Wireless Earbuds, White", "Electronics", "Audio", "headphones"),  # was a monitor
        ("Wireless Earbuds with Deep Bass, Black", "Electronics", "Audio", "headphones"),
        ("External Hard Drive, 5 TB, Space Gray", "Electronics", "Storage", "drive"),  # was a monitor
        ("Unlocked Smartphone 512 GB - Charcoal", "Electronics", "Smartphones", "phone"),  # was a monitor
        ("Bird Feeder - Green", "Patio, Lawn & Garden", "Gardening", "birdhouse"),  # was a mug
        ("Premium Aquarium Starter Kit, 20 gallon", "Pet Supplies", "Fish & Small Animals", "fish"),
        ("Classic Hamster Cage, 32 inch", "Pet Supplies", "Fish & Small Animals", "paw"),
        ("Drinking Glasses Set, 6 Pieces - Black", "Home & Kitchen", "Dining", "cup"),
        ("Essential Knit Beanie, Purple, One Size", "Clothing", "Activewear & Outerwear", "hat"),
        # head noun words refine a mixed subcategory; words after 'with'/'for'/',' do not
        ("Portable Bluetooth Speaker with Deep Bass", "Electronics", "Audio", "speaker"),
        ("Anti-Glare Screen Protector for 24 inch Monitors", "Electronics", "Accessories", "screen"),
        ("Slim Fit Chino Pants - Khaki", "Clothing", "Men's", "pants"),
        ("Wrap Dress, Navy Blue, M", "Clothing", "Women's", "dress"),
        ("Graphic T-Shirt for Kids with Jacket Print", "Clothing", "Kids'", "tshirt"),
        # substrings never match: 'car' in 'cardigan'/'Care'/'Carpet', 'pet' in 'Carpet', 'tv' in 'tvs'
        ("Cardigan", "Carpets & Care", "Cardigans", "tag"),
        ("Carpet Shampoo", "Home Care", "", "tag"),
        ("Careful Cart", "Automotive Care", "Car Parts", "tag"),
        ("Petite Scarf", "Clothing", "Petites", "tshirt"),
        # unknown or missing categories: the neutral tag, never a wrong object
        ("Mystery Gadget", "Industrial & Scientific", "Lab Supplies", "tag"),
        ("", "", "", "tag"),
    ],
)
def test_pictogram_from_whole_words(name: str, category: str, subcategory: str, expected: str) -> None:
    assert pictogram_for({"name": name, "category": category, "subcategory": subcategory}) == expected


def test_every_pictogram_of_the_table_is_drawn() -> None:
    assert table_pictograms() <= set(PICTOGRAMS)
    assert "tag" in PICTOGRAMS and len(table_pictograms()) >= 50


def one_product_per_subcategory() -> list[dict]:
    seen: dict[tuple[str, str], dict] = {}
    for row in BUNDLED:
        seen.setdefault((row["category"], row["subcategory"]), row)
    return list(seen.values())


HOSTILE = [
    {
        "id": "P-LONG",
        "name": "Ultra " * 40,
        "brand": "B" * 200,
        "category": "Grocery",
        "subcategory": "Snacks",
    },
    {"id": "P-WORD", "name": "Supercalifragilisticexpialidocious" * 3, "category": "Toys & Games"},
    {"id": "P-EMPTY", "name": "", "brand": None, "attributes": {"color": "Rose Gold"}},
    {"id": "P-ODD", "name": "Smörgåsbord — „Quoted“ & <b>tag</b>", "attributes": "not a mapping"},
    {
        "id": "P-TABS",
        "name": "Tab\tand\nnewline   spaced",
        "category": "Pet Supplies",
        "attributes": {"color": 7},
    },
]


@pytest.mark.parametrize("product", one_product_per_subcategory() + HOSTILE, ids=lambda p: p["id"])
def test_card_text_never_meets_decoration_and_reads_at_aa_contrast(product: dict) -> None:
    img, layout = render_card(product)
    assert layout_problems(layout) == []
    roles = [t.role for t in layout.text]
    assert roles.count("name") in (1, 2) and roles.count("note") == 1
    assert [t.text for t in layout.text if t.role == "note"] == [PLACEHOLDER_NOTE]
    if product.get("category"):
        assert "category" in roles
    if product.get("brand"):
        assert "brand" in roles
    if isinstance(product.get("attributes"), dict) and product["attributes"].get("color"):
        assert "colour" in roles
    for text in layout.text:
        figures = box_figures(img, text)
        assert figures.foreign_pixels == 0, (text, figures)
        assert figures.contrast >= 4.5, (text, figures)


def test_colour_attribute_is_written_and_drawn_in_that_colour() -> None:
    product = {"id": "P-1", "name": "Mug", "category": "Home & Kitchen", "subcategory": "Dining"}
    img, layout = render_card({**product, "attributes": {"color": "Navy Blue"}})
    assert [t.text for t in layout.text if t.role == "colour"] == ["Navy Blue"]
    swatch = layout.decoration[-1]
    centre = ((swatch[0] + swatch[2]) // 2, (swatch[1] + swatch[3]) // 2)
    assert img.getpixel(centre) == (30, 44, 96)
    _, plain = render_card(product)
    assert "colour" not in [t.role for t in plain.text]


def test_long_names_wrap_and_end_with_an_ellipsis_at_a_word() -> None:
    fnt = _fonts(1024)["name"]
    name = "Eco-Friendly Powder Laundry Detergent - Ocean Breeze, 30 loads, Extra Large Family Value Pack"
    lines = shorten(name, fnt, 880, 2)
    assert len(lines) == 2 and lines[-1].endswith(ELLIPSIS)
    assert all(fnt.getlength(line) <= 880 for line in lines)
    drawn = " ".join(lines)[: -len(ELLIPSIS)]
    assert name.startswith(drawn) and name[len(drawn)] in " ,"  # cut between words
    assert shorten("Short Name", fnt, 880, 2) == ["Short Name"]
    (word,) = shorten("X" * 300, fnt, 880, 2)
    assert word.endswith(ELLIPSIS) and fnt.getlength(word) <= 880


def test_cards_of_one_subcategory_are_no_near_duplicates() -> None:
    cleaning = [r for r in BUNDLED if r["subcategory"] == "Cleaning"][:120]
    hashes = [(r["id"], imaging.dhash(render_card(r)[0], DHASH_SIZE)) for r in cleaning]
    closest = min(imaging.hamming(a, b) for (_, a), (_, b) in itertools.combinations(hashes, 2))
    assert closest > CheckThresholds().near_duplicate_max_bits


def test_cards_are_deterministic_and_carry_the_new_model_label() -> None:
    product = BUNDLED[0]
    assert render_card(product)[0].tobytes() == render_card(dict(product))[0].tobytes()
    assert OFFLINE_MODEL != "offline-card-v1"  # stored v1 cards fingerprint differently and are redrawn
    assert render_product_card(product).size == (1024, 1024)


def test_pixel_measures_catch_decoration_and_faint_text() -> None:
    img, layout = render_card(BUNDLED[0])
    name = next(t for t in layout.text if t.role == "name")
    x0, y0, x1, y1 = name.box
    covered = img.copy()
    ImageDraw.Draw(covered).ellipse((x1 - 120, y0 - 60, x1 + 60, y1 + 60), fill=(60, 120, 200))
    assert box_figures(covered, name).foreign_pixels > 0
    assert layout_problems(replace(layout, decoration=(*layout.decoration, (x1 - 120, y0, x1, y1)))) != []
    faint = Image.new("RGB", (400, 120), (255, 255, 255))
    ImageDraw.Draw(faint).text((20, 30), "Faint Name", font=_fonts(1024)["name"], fill=(170, 170, 170))
    figures = box_figures(faint, replace(name, box=(10, 10, 390, 110)))
    assert 2.0 < figures.contrast < 4.5 and figures.foreign_pixels == 0


def test_pixel_luminance_matches_the_wcag_formula() -> None:
    colours = [(255, 255, 255), (0, 0, 0), (98, 98, 106), (30, 44, 96), (200, 40, 45)]
    expected = [relative_luminance(c) for c in colours]
    assert luminance(np.array(colours, dtype=float)).tolist() == pytest.approx(expected)
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)


@pytest.mark.parametrize("size", [640, 800, 1536])
def test_cards_stay_legible_at_other_sizes_from_640_px(size: int) -> None:
    for product in one_product_per_subcategory()[::8]:
        img, layout = render_card(product, size)
        assert img.size == (size, size) and layout_problems(layout) == []
        for text in layout.text:
            figures = box_figures(img, text)
            assert figures.foreign_pixels == 0 and figures.contrast >= 4.5, (size, text, figures)


def test_small_cards_are_the_640_px_card_scaled_down() -> None:
    img, layout = render_card(BUNDLED[0], 256)
    big, big_layout = render_card(BUNDLED[0], 640)
    assert img.size == (256, 256) and layout.size == 256 and layout_problems(layout) == []
    assert [t.text for t in layout.text] == [t.text for t in big_layout.text]
    assert imaging.hamming(imaging.dhash(img, 16), imaging.dhash(big, 16)) <= 8
