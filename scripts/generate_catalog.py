"""Generate the bundled demo catalog, data/catalog.json, byte for byte reproducibly from a seed."""

from __future__ import annotations

import argparse
import bisect
import csv
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from json.encoder import encode_basestring as _quote
from pathlib import Path
from random import Random
from typing import Any, TypeVar

DEFAULT_COUNT = 5000
DEFAULT_SEED = 20250313
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "data" / "catalog.json"
FORMATS = ("json", "jsonl", "csv", "parquet")
FIELDS = (
    "id",
    "name",
    "description",
    "category",
    "subcategory",
    "price",
    "brand",
    "rating",
    "review_count",
    "stock_status",
    "attributes",
    "image",
    "created_at",
    "updated_at",
)

AttrFn = Callable[[Random], dict[str, str]]
Option = tuple[str, ...] | Callable[[Random], str]


# --- random draws ------------------------------------------------------------------------------------------
# One `rng.random()` per draw: about five times faster than Random.choice/randint (which loop over
# getrandbits), and just as reproducible. The catalog's bytes depend on these exact recipes.

T = TypeVar("T")


def _choice(rng: Random, seq: Sequence[T]) -> T:
    return seq[int(rng.random() * len(seq))]


def _randint(rng: Random, low: int, high: int) -> int:
    """An integer in [low, high], both included."""
    return low + int(rng.random() * (high - low + 1))


def _below(rng: Random, n: int) -> int:
    return int(rng.random() * n)


def _sample(rng: Random, seq: Sequence[T], k: int) -> list[T]:
    """`k` distinct elements of `seq` in draw order (k is small: a partial Fisher-Yates shuffle)."""
    pool = list(seq)
    k = min(k, len(pool))
    for i in range(k):
        j = i + _below(rng, len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


# --- colour palettes (plain colour names: the offline renderer maps them to RGB) -------------------------

GENERAL = (
    "Black", "White", "Gray", "Navy Blue", "Red", "Blue", "Green", "Forest Green", "Pink", "Purple",
    "Yellow", "Orange", "Brown", "Beige", "Silver", "Teal", "Charcoal", "Burgundy", "Sky Blue", "Olive",
)  # fmt: skip
TECH = ("Black", "Black", "Black", "White", "Silver", "Space Gray", "Charcoal", "Navy Blue")
PACKAGING = ("Orange", "Blue", "Green", "White", "Purple", "Teal", "Yellow", "Red", "Light Blue", "Pink")
KIDS = (
    "Red", "Blue", "Pink", "Purple", "Yellow", "Green", "Orange", "Turquoise", "Lime Green", "Navy Blue",
    "Rainbow", "Black",
)  # fmt: skip
HOME = (
    "White",
    "Gray",
    "Beige",
    "Navy Blue",
    "Sage Green",
    "Charcoal",
    "Blush Pink",
    "Cream",
    "Black",
    "Teal",
)
KITCHEN = ("Black", "Red", "Silver", "White", "Gray", "Teal", "Cream", "Navy Blue", "Copper", "Sage Green")
APPAREL = (
    "Black", "White", "Heather Gray", "Navy Blue", "Red", "Olive", "Burgundy", "Royal Blue", "Charcoal",
    "Pink", "Khaki", "Forest Green", "Light Blue", "Purple",
)  # fmt: skip
OUTDOOR = ("Green", "Orange", "Blue", "Red", "Black", "Gray", "Olive", "Yellow", "Navy Blue", "Tan")

# Name adjectives by domain, so that tomatoes are never "Heavy-Duty" and drills never "Organic".
ADJECTIVES = (
    "Premium",
    "Classic",
    "Essential",
    "Deluxe",
    "Everyday",
    "Modern",
    "Signature",
    "Compact",
    "Eco-Friendly",
)
HOME_ADJ = (
    "Classic",
    "Modern",
    "Premium",
    "Essential",
    "Everyday",
    "Deluxe",
    "Signature",
    "Luxury",
    "Farmhouse",
)
CARE_ADJ = ("Gentle", "Daily", "Premium", "Natural", "Ultra", "Essential", "Advanced", "Clinical", "Pure")
TECH_ADJ = ("Pro", "Ultra", "Compact", "Advanced", "Premium", "Essential", "Slim", "Performance", "Elite")
GEAR_ADJ = (
    "Heavy-Duty",
    "Lightweight",
    "Pro",
    "Durable",
    "All-Weather",
    "Compact",
    "Premium",
    "Essential",
    "Ultra",
)
FOOD_ADJ = ("Organic", "Classic", "Family Size", "Natural", "Premium", "Everyday", "Gourmet", "Simply")
KIDS_ADJ = ("Classic", "Bright", "Jumbo", "Everyday", "Deluxe", "Essential", "Premium", "Colorful")
TOY_ADJ = ("Deluxe", "Classic", "Ultimate", "Creative", "Junior", "Mega", "Adventure", "Mini")
APPAREL_ADJ = ("Classic", "Essential", "Everyday", "Premium", "Modern", "Signature", "Soft", "Lightweight")
CLEAN_ADJ = ("Ultra", "Concentrated", "Everyday", "Premium", "Eco-Friendly", "Fresh", "Advanced", "Natural")
APPLIANCE_ADJ = ("Compact", "Premium", "Pro", "Digital", "Classic", "Essential", "Deluxe", "Smart")
BABY_ADJ = ("Gentle", "Everyday", "Premium", "Essential", "Soft", "Natural", "Deluxe")
HOUSEHOLD_ADJ = ("Everyday", "Premium", "Essential", "Value", "Family", "Eco-Friendly")
PET_ADJ = ("Premium", "Classic", "Essential", "Natural", "Everyday", "Deluxe", "Durable")
GARDEN_ADJ = ("Classic", "Premium", "Durable", "Essential", "Modern", "Eco-Friendly", "Weatherproof")
ADJECTIVES_BY_CATEGORY = {
    "Home & Kitchen": HOME_ADJ,
    "Beauty & Personal Care": CARE_ADJ,
    "Office & School Supplies": KIDS_ADJ,
    "Electronics": TECH_ADJ,
    "Grocery": FOOD_ADJ,
    "Pet Supplies": PET_ADJ,
    "Clothing": APPAREL_ADJ,
    "Sports & Outdoors": GEAR_ADJ,
    "Toys & Games": TOY_ADJ,
    "Automotive": GEAR_ADJ,
    "Baby": BABY_ADJ,
    "Tools & Home Improvement": GEAR_ADJ,
    "Patio, Lawn & Garden": GARDEN_ADJ,
    "Health & Household": HOUSEHOLD_ADJ,
}
ADJECTIVES_BY_SUBCATEGORY = {
    "Cleaning": CLEAN_ADJ,
    "Appliances": APPLIANCE_ADJ,
    "Office Electronics": TECH_ADJ,
    "Writing Instruments": ADJECTIVES,
    "Desk Accessories": ADJECTIVES,
    "Binders & Folders": ADJECTIVES,
    "Paper Products": ADJECTIVES,
    "Lighting & Electrical": ADJECTIVES,
}


@dataclass(frozen=True)
class Kind:
    """One kind of product: where it sits in the catalog and how its fields are drawn."""

    category: str
    subcategory: str
    weight: int  # relative frequency in the catalog
    # (noun, price low, price high) or (noun, low, high, {attribute: options}) overriding the kind's attrs
    items: tuple[tuple[Any, ...], ...]
    brands: tuple[str, ...]
    names: tuple[str, ...]  # str.format templates over the context (see _context)
    leads: tuple[str, ...]  # first description sentence
    extras: tuple[str, ...]  # further plain sentences (no fields), 0-2 of them are appended
    attrs: AttrFn
    colors: tuple[str, ...] = GENERAL  # empty: the product has no colour attribute
    adjectives: tuple[str, ...] | None = None  # None: by subcategory, else by category

    def adjective_pool(self) -> tuple[str, ...]:
        if self.adjectives is not None:
            return self.adjectives
        return ADJECTIVES_BY_SUBCATEGORY.get(self.subcategory) or ADJECTIVES_BY_CATEGORY.get(
            self.category, ADJECTIVES
        )


# --- attribute helpers -------------------------------------------------------------------------------------


def pick(**options: Option) -> AttrFn:
    """An attribute function choosing each key from its tuple (or calling its function), in keyword order."""
    fields = tuple(options.items())

    def draw(rng: Random) -> dict[str, str]:
        return {key: _choice(rng, opt) if isinstance(opt, tuple) else opt(rng) for key, opt in fields}

    return draw


def dims(low: int, high: int) -> Callable[[Random], str]:
    """Dimensions in the sample's style: 43" x 44" x 24"."""
    return lambda rng: " x ".join(f'{_randint(rng, low, high)}"' for _ in range(3))


def lbs(low: float, high: float) -> Callable[[Random], str]:
    """A weight in the sample's style: 7.3 lbs."""
    return lambda rng: f"{_randint(rng, round(low * 10), round(high * 10)) / 10:.1f} lbs"


def num(low: int, high: int, unit: str = "") -> Callable[[Random], str]:
    """An integer as text, with an optional unit: "42" or "64 count"."""
    return lambda rng: f"{_randint(rng, low, high)}{unit}"


YES_NO = ("Yes", "No")
WARRANTY = ("1 year", "1 year", "2 years", "3 years")


def _laundry_detergent(rng: Random) -> dict[str, str]:
    form = _choice(rng, ("Liquid", "Liquid", "Liquid", "Powder", "Pods", "Pods", "Sheets"))
    if form == "Liquid":
        amount = _choice(rng, (46, 64, 92, 100, 105, 132, 150))
        size, loads, price = f"{amount} oz", round(amount * 0.64), amount * rng.uniform(0.11, 0.18) + 2
    elif form == "Powder":
        amount = _choice(rng, (50, 95, 143))
        size, loads, price = f"{amount} oz", round(amount * 0.6), amount * rng.uniform(0.1, 0.15) + 2
    elif form == "Pods":
        amount = _choice(rng, (16, 24, 42, 57, 81, 112))
        size, loads, price = f"{amount} count", amount, amount * rng.uniform(0.2, 0.32) + 1
    else:
        amount = _choice(rng, (30, 60, 90))
        size, loads, price = f"{amount} count", amount, amount * rng.uniform(0.25, 0.38) + 1
    scent = _choice(rng, 
        ("Fresh Linen", "Original", "Spring Meadow", "Lavender", "Free & Clear", "Ocean Breeze",
         "Mountain Spring", "Clean Cotton", "Tropical Sunrise", "Island Fresh", "Lemon & White Lilac",
         "Unscented", "Eucalyptus Mint")
    )  # fmt: skip
    unscented = scent in ("Free & Clear", "Unscented")
    line = _choice(rng, 
        ("Premium", "High-Efficiency", "Ultra Concentrated", "Plus Oxi", "Original", "Sensitive Skin",
         "Stain Fighter", "Eco-Friendly", "Cold Water", "Plant-Based", "Baby", "Deep Clean", "Bright & White")
    )  # fmt: skip
    return {
        "size": size,
        "scent": scent,
        "form": form,
        "loads": f"{loads} loads",
        "he_compatible": "Yes",
        "_line": line,
        "_noun": {"Liquid": "Liquid Laundry Detergent", "Powder": "Powder Laundry Detergent"}.get(
            form, f"Laundry Detergent {form}"
        ),
        "_scent_phrase": "fresh without added fragrance"
        if unscented
        else f"with a light {scent.lower()} scent",
        "_price": f"{price:.2f}",
    }


def _hand_soap(rng: Random) -> dict[str, str]:
    form = _choice(rng, ("Liquid", "Liquid", "Foaming", "Foaming", "Gel", "Bar"))
    scent = _choice(rng, 
        ("Cucumber & Mint", "Lavender", "Fresh Citrus", "Coconut Water", "Aloe Vera", "Eucalyptus",
         "Unscented", "Sea Salt", "Honeysuckle", "Lemon Verbena", "Sweet Pea", "Sandalwood", "Green Tea",
         "Oatmeal & Honey", "Mango")
    )  # fmt: skip
    benefit = _choice(rng, 
        ("Moisturizing", "Antibacterial", "Gentle", "Deep Cleansing", "Sensitive Skin", "Plant-Based",
         "Hydrating", "Nourishing", "Kitchen", "Shea Butter")
    )  # fmt: skip
    if form == "Bar":
        bars = _choice(rng, (2, 4, 6, 8, 10))
        size, pack, noun, price = "4 oz", bars, "Bar Soap", bars * rng.uniform(0.8, 1.6) + 1
    elif rng.random() < 0.2:
        amount = _choice(rng, ("34 oz", "50 oz", "56 oz", "64 oz"))
        size, pack, noun, price = amount, 1, f"{form} Hand Soap Refill", rng.uniform(8, 16)
    else:
        size = _choice(rng, ("7.5 oz", "8 oz", "10 oz", "11.25 oz", "12 oz", "16 oz"))
        pack = _choice(rng, (1, 1, 1, 2, 3, 4, 6))
        noun, price = f"{form} Hand Soap", pack * rng.uniform(2.5, 5.5) + 0.5
    return {
        "size": size,
        "scent": scent,
        "form": form,
        "pack_size": str(pack),
        "antibacterial": "Yes" if benefit == "Antibacterial" else _choice(rng, ("No", "No", "Yes")),
        "_benefit": benefit,
        "_noun": noun,
        "_scent_phrase": "with no added fragrance"
        if scent == "Unscented"
        else f"with a fresh {scent.lower()} scent",
        "_pack": f" ({pack} Bars)" if form == "Bar" else (f" (Pack of {pack})" if pack > 1 else ""),
        "_price": f"{price:.2f}",
    }


def _school_kit(rng: Random) -> dict[str, str]:
    grade = _choice(rng, ("Pre-K", "K-2", "K-5", "K-5", "3-5", "6-8"))
    pieces = _randint(rng, 20, 80)
    return {
        "grade_level": grade,
        "pieces": str(pieces),
        "case_included": _choice(rng, YES_NO),
        "_level": {"Pre-K": "Preschool", "6-8": "Middle School"}.get(grade, "Elementary"),
        "_grades": "Preschoolers" if grade == "Pre-K" else f"Grades {grade}",
        "_price": f"{8 + pieces * rng.uniform(0.3, 0.55):.2f}",
    }


_RESOLUTIONS = {
    "1920x1080": ("Full HD", 99, 179),
    "1920x1200": ("WUXGA", 159, 249),
    "2560x1440": ("QHD", 199, 379),
    "3840x2160": ("4K UHD", 279, 649),
    "5120x2880": ("5K", 1099, 1599),
    "2560x1080": ("Full HD Ultrawide", 229, 349),
    "3440x1440": ("WQHD Ultrawide", 349, 799),
    "5120x1440": ("Dual QHD Super Ultrawide", 899, 1299),
}


def _monitor(rng: Random) -> dict[str, str]:
    inch = _choice(rng, ("21.5", "23.8", "24", "24", "27", "27", "27", "27", "32", "32", "34", "34", "49"))
    if inch == "49":
        resolution = "5120x1440"
    elif inch == "34":
        resolution = _choice(rng, ("3440x1440", "3440x1440", "2560x1080"))
    elif inch == "27":
        resolution = _choice(
            rng, ("1920x1080", "2560x1440", "2560x1440", "3840x2160", "3840x2160", "5120x2880")
        )
    elif inch == "32":
        resolution = _choice(rng, ("2560x1440", "3840x2160", "3840x2160"))
    else:
        resolution = _choice(rng, ("1920x1080", "1920x1080", "1920x1080", "1920x1200", "2560x1440"))
    label, low, high = _RESOLUTIONS[resolution]
    use = _choice(rng, ("Computer", "Computer", "Office", "Gaming", "Gaming", "Professional", "Home Office"))
    gaming = use == "Gaming"
    panel = _choice(rng, ("IPS", "IPS", "IPS", "VA", "TN", "OLED") if gaming else ("IPS", "IPS", "IPS", "VA"))
    curved = "Yes" if int(float(inch)) >= 34 or (panel == "VA" and rng.random() < 0.6) else "No"
    price = rng.uniform(low, high) * (1.25 if gaming else 1.0) * (1.6 if panel == "OLED" else 1.0)
    return {
        "screen_size": f"{inch} inch",
        "resolution": resolution,
        "refresh_rate": _choice(
            rng, ("144Hz", "165Hz", "180Hz", "240Hz") if gaming else ("60Hz", "60Hz", "75Hz", "100Hz")
        ),
        "panel_type": panel,
        "response_time": _choice(rng, ("1ms", "1ms", "0.03ms") if gaming else ("4ms", "5ms", "5ms")),
        "connectivity": _choice(
            rng,
            (
                "HDMI, DisplayPort",
                "HDMI, DisplayPort, USB-C",
                "2x HDMI, DisplayPort",
                "HDMI, VGA",
                "HDMI, DisplayPort, USB-C, USB Hub",
            ),
        ),  # fmt: skip
        "curved": curved,
        "warranty": _choice(rng, ("1 year", "3 years", "3 years")),
        "_inch": inch,
        "_label": label,
        "_use": ("Curved " if curved == "Yes" else "") + use,
        "_feature": _choice(
            rng,
            (
                "Built-in Speakers",
                "USB-C Power Delivery",
                "Height-Adjustable Stand",
                "Eye-Care Flicker-Free Screen",
                "HDR10",
                "Adaptive Sync",
                "Low Blue Light Mode",
                "VESA Mount",
            ),
        ),  # fmt: skip
        "_price": f"{price:.2f}",
    }


def _screen_protector(rng: Random) -> dict[str, str]:
    device = _choice(
        rng, ("Monitors", "Monitors", "Monitors", "Monitors", "Laptops", "Laptops", "Tablets", "Phones")
    )
    style = "Film"
    if device == "Monitors":
        size = _choice(
            rng,
            ("21.5 inch", "23.8 inch", "24 inch", "24-27 inch", "27 inch", "27 inch", "32 inch", "34 inch"),
        )
        style = _choice(rng, ("Film", "Hanging Filter", "Removable Filter", "Magnetic Filter"))
        material = _choice(rng, ("Anti-reflective film", "Matte PET film", "Acrylic panel"))
        price = (
            rng.uniform(19, 39)
            + (15 if size in ("32 inch", "34 inch") else 0)
            + (10 if style != "Film" else 0)
        )
    elif device == "Laptops":
        size = _choice(rng, ("13.3 inch", "14 inch", "15.6 inch", "16 inch", "17.3 inch"))
        material = _choice(rng, ("Matte PET film", "Anti-reflective film", "Magnetic privacy film"))
        price = rng.uniform(12, 35)
    elif device == "Tablets":
        size = _choice(rng, ("10.2 inch", "10.9 inch", "11 inch", "12.9 inch"))
        material = _choice(rng, ("Paper-feel matte film", "Anti-glare tempered glass"))
        price = rng.uniform(9, 24)
    else:
        size = _choice(rng, ("6.1 inch", "6.3 inch", "6.7 inch"))
        material = _choice(rng, ("Matte tempered glass", "Anti-glare tempered glass"))
        price = rng.uniform(7, 18)
    privacy = "Yes" if "privacy" in material else _choice(rng, ("No", "No", "Yes"))
    blue_light = _choice(rng, ("Yes", "Yes", "No"))
    pack = "1 Pack" if style != "Film" else _choice(rng, ("1 Pack", "2 Pack", "2 Pack", "3 Pack"))
    variant = "Privacy" if privacy == "Yes" else ("Blue Light Blocking" if blue_light == "Yes" else "Matte")
    return {
        "color": "Black" if style != "Film" or privacy == "Yes" else "Clear",
        "size": size,
        "material": material,
        "blue_light_reduction": blue_light,
        "privacy_filter": privacy,
        "compatible_with": device,
        "pack": pack,
        "_device": device,
        "_style": "Screen Protector" if style == "Film" else f"Screen {style}",
        "_variant": variant,
        "_price": f"{price:.2f}",
    }


def _tv(rng: Random) -> dict[str, str]:
    inch = _choice(rng, (32, 43, 50, 55, 55, 65, 65, 75, 85))
    resolution = "1080p" if inch <= 43 and rng.random() < 0.5 else "4K"
    return {
        "weight": f"{inch * 0.5 + _randint(rng, 0, 30) / 10:.1f} lbs",
        "warranty": _choice(rng, WARRANTY),
        "screen_size": f"{inch} inches",
        "resolution": resolution,
        "display_type": _choice(rng, ("LED", "QLED", "OLED", "Mini-LED")),
        "_inch": str(inch),
        "_price": f"{inch * rng.uniform(6, 14) + (0 if resolution == '1080p' else 80):.2f}",
    }


def _smartphone(rng: Random) -> dict[str, str]:
    storage = _choice(rng, (64, 128, 128, 256, 512))
    return {
        "weight": f"{_randint(rng, 55, 80) / 10:.1f} oz",
        "warranty": _choice(rng, WARRANTY),
        "storage": f"{storage} GB",
        "memory": _choice(rng, ("6 GB", "8 GB", "12 GB")),
        "screen_size": _choice(rng, ("6.1 inch", "6.4 inch", "6.7 inch")),
        "_price": f"{rng.uniform(199, 499) + storage * 0.8:.2f}",
    }


def _laptop(rng: Random) -> dict[str, str]:
    return {
        "weight": lbs(2.6, 5.8)(rng),
        "warranty": _choice(rng, WARRANTY),
        "screen_size": _choice(rng, ("13.3 inch", "14 inch", "15.6 inch", "16 inch")),
        "storage": _choice(rng, ("256 GB SSD", "512 GB SSD", "1 TB SSD")),
        "memory": _choice(rng, ("8 GB", "16 GB", "16 GB", "32 GB")),
        "processor": _choice(
            rng, ("Intel Core i5", "Intel Core i7", "AMD Ryzen 5", "AMD Ryzen 7", "Intel Core Ultra 7")
        ),
    }


_MAKEUP_LINES = (
    ("Matte Lipstick", 5.99, 24.99, ("Matte", "Satin", "Cream"),
     (("Classic Red", "Red"), ("Nude Beige", "Beige"), ("Berry", "Burgundy"), ("Coral Crush", "Coral"),
      ("Soft Pink", "Pink"), ("Mauve", "Purple"))),
    ("Volumizing Mascara", 6.99, 24.99, ("Waterproof", "Washable"),
     (("Blackest Black", "Black"), ("Brownish Black", "Brown"), ("Navy", "Navy Blue"))),
    ("Liquid Foundation", 8.99, 39.99, ("Matte", "Natural", "Dewy"),
     (("Ivory", "Cream"), ("Natural Beige", "Beige"), ("Warm Honey", "Tan"), ("Caramel", "Brown"), ("Espresso", "Brown"))),
    ("Eyeshadow Palette", 9.99, 49.99, ("Matte", "Shimmer"),
     (("Warm Nudes", "Brown"), ("Smoky Night", "Black"), ("Sunset", "Orange"), ("Rose Gold", "Pink"))),
    ("Nail Polish", 3.99, 12.99, ("Gloss", "Gel", "Matte"),
     (("Cherry Red", "Red"), ("Ballet Pink", "Pink"), ("Ocean Teal", "Teal"), ("Lilac", "Purple"), ("Midnight", "Navy Blue"))),
)  # fmt: skip


def _makeup(rng: Random) -> dict[str, str]:
    noun, low, high, finishes, shades = _choice(rng, _MAKEUP_LINES)
    shade, color = _choice(rng, shades)
    return {
        "color": color,
        "shade": shade,
        "finish": _choice(rng, finishes),
        "_noun": noun,
        "_price": f"{rng.uniform(low, high):.2f}",
    }


# --- the catalog's kinds of product -----------------------------------------------------------------------

SCENTS = (
    "Lavender",
    "Fresh Citrus",
    "Original",
    "Coconut",
    "Unscented",
    "Eucalyptus",
    "Rose",
    "Vanilla",
    "Ocean Breeze",
)

# fmt: off
KINDS: tuple[Kind, ...] = (
    # Home & Kitchen -------------------------------------------------------------------------------------------
    Kind(
        "Home & Kitchen", "Cleaning", 60, (("Laundry Detergent", 0, 0),),
        ("Tide", "Gain", "Persil", "Arm & Hammer", "all", "Seventh Generation", "Purex", "BrightWash", "PureFold",
         "Method", "Mrs. Meyer's"),
        ("{_line} {_noun}, {scent}, {size}", "{_line} {_noun} - {scent}, {loads}", "{_noun}, {scent}, {size} ({loads})"),
        ("High-efficiency laundry detergent for all washing machines, with enough for {loads}.",
         "{_noun} made to lift tough stains and leave clothes {_scent_phrase}.",
         "{_line} {_noun_lc}, made to clean deep in every wash and leave laundry {_scent_phrase}."),
        ("Removes tough stains and leaves clothes fresh and clean.", "Safe for HE and standard machines.",
         "Dermatologist tested and gentle on sensitive skin.", "Concentrated formula means less plastic per load.",
         "Works in cold water to save energy.", "Keeps whites bright and colors vibrant."),
        _laundry_detergent, PACKAGING,
    ),
    Kind(
        "Home & Kitchen", "Cleaning", 10,
        (("Liquid Fabric Softener", 4.99, 14.99, {"size": ("48 oz", "64 oz", "90 oz", "120 oz")}),
         ("Dryer Sheets", 3.99, 11.99, {"size": ("40 count", "80 count", "120 count", "240 count")})),
        ("Downy", "Snuggle", "Bounce", "Gain", "Seventh Generation", "PureFold", "BrightWash"),
        ("{adj} {item}, {scent}, {size}", "{item} - {scent}, {size}"),
        ("{item} for laundry that comes out soft, static-free and lightly scented.",
         "Keeps towels fluffy and clothes soft wash after wash."),
        ("Safe for all washing machines.", "Reduces wrinkles and static cling.", "Made with plant-based softeners."),
        pick(size=("64 oz",), scent=SCENTS), PACKAGING,
    ),
    Kind(
        "Home & Kitchen", "Cleaning", 14,
        (("Dish Soap", 2.49, 6.99, {"size": ("19.4 oz", "28 oz", "38 oz")}),
         ("All-Purpose Cleaner Spray", 3.49, 8.99, {"size": ("22 oz", "32 oz")}),
         ("Glass Cleaner", 2.99, 6.49, {"size": ("23 oz", "32 oz")}),
         ("Stain Remover Spray", 3.99, 9.99, {"size": ("22 oz", "30 oz")}),
         ("Disinfecting Wipes", 4.49, 12.99, {"size": ("35 count", "75 count", "80 count")})),
        ("Dawn", "Lysol", "Clorox", "Method", "Mrs. Meyer's", "Windex", "OxiClean", "Seventh Generation", "Sparkly"),
        ("{adj} {item}, {scent}, {size}", "{item} - {scent}, {size}"),
        ("{item} for cutting through grease and grime.", "Powerful {item_lc} for everyday messes around the home."),
        ("Biodegradable formula without harsh chemicals.", "Leaves a streak-free shine.",
         "Kills 99.9% of household germs.", "Bottle made from recycled plastic."),
        pick(size=("32 oz",), scent=SCENTS), PACKAGING,
    ),
    Kind(
        "Home & Kitchen", "Cookware", 12,
        (("Nonstick Frying Pan", 19.99, 59.99, {"size": ("8 inch", "10 inch", "12 inch"),
          "material": ("Hard-Anodized Aluminum", "Ceramic Nonstick", "Stainless Steel")}),
         ("Saucepan with Lid", 24.99, 69.99, {"size": ("1.5 qt", "2 qt", "3 qt")}),
         ("Dutch Oven", 49.99, 249.99, {"size": ("3.5 qt", "5.5 qt", "7.25 qt"), "material": ("Enameled Cast Iron",)}),
         ("Cookware Set", 89.99, 399.99, {"size": ("5 piece", "10 piece", "12 piece")}),
         ("Cast Iron Skillet", 19.99, 59.99, {"size": ("10.25 inch", "12 inch"), "material": ("Cast Iron",),
          "dishwasher_safe": ("No",)})),
        ("Lodge", "T-fal", "Cuisinart", "Calphalon", "Le Creuset", "All-Clad", "OXO", "HearthStone", "Ironwood Kitchen"),
        ("{adj} {item}, {size}, {color}", "{item} {size} - {color}", "{material} {item}, {size}"),
        ("{material} {item_lc} that heats evenly for searing, sauteing and simmering.",
         "A {adj_lc} {item_lc} built for everyday cooking."),
        ("Oven safe to 450 F.", "Works on gas, electric and induction stoves.", "Stay-cool handle for a secure grip."),
        pick(size=("10 inch",), material=("Hard-Anodized Aluminum", "Stainless Steel", "Ceramic Nonstick"),
             dishwasher_safe=YES_NO),
        KITCHEN,
    ),
    Kind(
        "Home & Kitchen", "Bakeware", 8,
        (("Baking Sheet", 9.99, 24.99), ("12-Cup Muffin Pan", 9.99, 22.99), ("Round Cake Pan", 8.99, 19.99),
         ("Loaf Pan", 7.99, 18.99), ("Glass Baking Dish", 12.99, 29.99, {"material": ("Glass",)}),
         ("Bakeware Set", 29.99, 79.99)),
        ("Pyrex", "Nordic Ware", "Wilton", "USA Pan", "OXO", "Rachael Ray", "HearthStone"),
        ("{adj} {item}, {color}", "{material} {item}, {dimensions}", "{item} - {material}, {color}"),
        ("{material} {item_lc} for cookies, cakes and roasted vegetables.", "Nonstick {item_lc} that releases bakes cleanly."),
        ("Warp-resistant and oven safe.", "Rolled edges for a sturdy grip.", "Dishwasher safe."),
        pick(material=("Aluminized Steel", "Silicone", "Carbon Steel", "Ceramic"), dimensions=dims(8, 18)),
        KITCHEN,
    ),
    Kind(
        "Home & Kitchen", "Dining", 10,
        (("Dinnerware Set", 39.99, 149.99, {"pieces": ("12", "16", "18", "32")}),
         ("Drinking Glasses Set", 19.99, 49.99, {"material": ("Glass", "Crystal"), "pieces": ("4", "6", "8", "12")}),
         ("Flatware Set", 24.99, 99.99, {"material": ("Stainless Steel",), "pieces": ("20", "40", "45")}),
         ("Coffee Mugs Set", 19.99, 44.99, {"pieces": ("2", "4", "6")}),
         ("Serving Bowls", 14.99, 39.99, {"pieces": ("2", "3", "4")})),
        ("Corelle", "Lenox", "Libbey", "Mikasa", "Gibson", "Oneida", "Pfaltzgraff", "Table & Hearth"),
        ("{adj} {material} {item}, {pieces} Pieces, {color}", "{item}, {pieces} Pieces - {color}"),
        ("{adj} {material_lc} {item_lc} for everyday meals and entertaining.", "A {pieces}-piece {item_lc} in {color_lc}."),
        ("Microwave and dishwasher safe.", "Chip-resistant for daily use.", "Stackable to save cabinet space."),
        pick(material=("Stoneware", "Porcelain", "Melamine", "Bone China", "Ceramic"), pieces=("4",)),
        HOME,
    ),
    Kind(
        "Home & Kitchen", "Bedding", 12,
        (("Sheet Set", 29.99, 129.99), ("Down Alternative Comforter", 39.99, 149.99), ("Duvet Cover Set", 34.99, 119.99),
         ("Quilt Set", 44.99, 139.99), ("Bed Pillows (2 Pack)", 24.99, 79.99, {"size": ("Standard", "Queen", "King")})),
        ("Brooklinen", "Casper", "Pinzon", "Utopia Bedding", "Threshold", "Linenspa", "Sleepwell", "Nestwell"),
        ("{adj} {material} {item}, {size}, {color}", "{item} - {size}, {color}"),
        ("{material} {item_lc}, soft, breathable and cozy all year round.", "{item} in {color_lc}, sized {size}."),
        ("Machine washable.", "Hypoallergenic and OEKO-TEX certified.", "Easy-care fabric resists wrinkles."),
        pick(size=("Twin", "Full", "Queen", "Queen", "King", "California King"),
             material=("Egyptian Cotton", "Microfiber", "Bamboo Viscose", "Percale Cotton", "Linen", "Sateen Cotton"),
             thread_count=("300", "400", "600", "800")),
        HOME,
    ),
    Kind(
        "Home & Kitchen", "Bath", 10,
        (("Bath Towel Set", 24.99, 69.99), ("Hand Towels (4 Pack)", 14.99, 29.99), ("Bath Mat", 12.99, 34.99),
         ("Shower Curtain", 14.99, 39.99, {"material": ("Polyester", "Cotton", "Linen Blend")}),
         ("Bathrobe", 29.99, 69.99)),
        ("Wayfair", "Amazon Basics", "Chakir", "Threshold", "Utopia Towels", "Nestwell", "Harbor & Tide"),
        ("{adj} {item}, {color}", "{material} {item} - {color}"),
        ("Soft, absorbent {material_lc} {item_lc} for a spa-like bathroom.", "{adj} {item_lc} in {color_lc}."),
        ("Quick drying and fade resistant.", "Machine washable.", "Gets softer with every wash."),
        pick(material=("Cotton", "Turkish Cotton", "Microfiber", "Bamboo")),
        HOME,
    ),
    Kind(
        "Home & Kitchen", "Appliances", 18,
        (("Drip Coffee Maker", 29.99, 149.99, {"feature": ("Programmable Timer", "Thermal Carafe", "Keep Warm Setting")}),
         ("Air Fryer", 49.99, 179.99, {"feature": ("Digital Display", "Dual Baskets", "Viewing Window")}),
         ("Blender", 29.99, 199.99, {"feature": ("Variable Speeds", "Travel Cups", "Pulse Function")}),
         ("2-Slice Toaster", 19.99, 79.99, {"wattage": ("800W", "900W"), "feature": ("Bagel Setting", "Extra-Wide Slots")}),
         ("Electric Kettle", 19.99, 79.99, {"feature": ("Temperature Control", "Keep Warm Setting", "Glass Body")}),
         ("Stand Mixer", 149.99, 449.99, {"wattage": ("300W", "500W"), "feature": ("Tilt-Head", "10 Speeds")}),
         ("Slow Cooker", 29.99, 89.99, {"wattage": ("200W", "250W"), "feature": ("Programmable Timer", "Keep Warm Setting")})),
        ("Cuisinart", "Ninja", "KitchenAid", "Hamilton Beach", "Keurig", "Breville", "Instant Pot", "Whirlpool"),
        ("{adj} {item}, {color}", "{item} with {feature}, {color}", "{item}, {wattage} - {color}"),
        ("{adj} {item_lc} with {feature_lc} for faster, easier cooking.", "A {wattage} {item_lc} built to last."),
        ("Dishwasher-safe removable parts.", "Auto shut-off for peace of mind.", "Compact footprint for small kitchens."),
        pick(material=("Stainless Steel", "Plastic", "Brushed Steel"), wattage=("1000W", "1200W", "1500W"),
             feature=("Digital Display",), dimensions=dims(8, 18)),
        KITCHEN,
    ),
    Kind(
        "Home & Kitchen", "Furniture", 12,
        (("Bookshelf", 49.99, 199.99), ("Side Table", 39.99, 149.99),
         ("Office Chair", 89.99, 349.99, {"material": ("Mesh", "Faux Leather", "Fabric")}),
         ("TV Stand", 79.99, 299.99), ("Writing Desk", 99.99, 349.99),
         ("Accent Chair", 129.99, 399.99, {"material": ("Velvet", "Linen", "Rattan", "Boucle")})),
        ("Ashley Furniture", "IKEA", "Sauder", "Walker Edison", "Zinus", "Nathan James", "Hearth & Grove", "Oakline"),
        ("{adj} {material} {item}, {color}", "{item} - {material}, {color}"),
        ("{adj} {item_lc} made from {material_lc} for living rooms and home offices.",
         "A sturdy {item_lc} that measures {dimensions}."),
        ("Easy assembly with all hardware included.", "Supports up to 250 lbs.", "Scratch-resistant finish."),
        pick(material=("Wood", "Engineered Wood", "Metal", "Solid Oak", "Walnut Veneer"), dimensions=dims(14, 60)),
        HOME,
    ),
    Kind(
        "Home & Kitchen", "Decor", 12,
        (("Throw Pillow Covers (2 Pack)", 12.99, 29.99, {"material": ("Cotton", "Linen", "Velvet")}),
         ("Table Lamp", 24.99, 89.99), ("Wall Clock", 19.99, 59.99),
         ("Vase", 16.99, 49.99, {"material": ("Ceramic", "Glass")}), ("Picture Frame Set", 19.99, 59.99),
         ("Area Rug", 49.99, 249.99, {"material": ("Jute", "Wool", "Polypropylene")}),
         ("Scented Candle", 9.99, 34.99, {"material": ("Soy Wax",)})),
        ("Threshold", "Hearth & Hand", "Umbra", "Nourison", "Yankee Candle", "Kate and Laurel", "Casa Verde"),
        ("{adj} {item}, {color}", "{style} {item} - {color}"),
        ("{style} {item_lc} for a warm accent in any room.", "{item} in {color_lc} with a {style_lc} design."),
        ("Pairs well with neutral and bold palettes.", "Makes a thoughtful housewarming gift."),
        pick(material=("Ceramic", "Metal", "Wood", "Glass"), style=("Modern", "Farmhouse", "Boho", "Mid-Century",
             "Minimalist", "Coastal"), dimensions=dims(6, 36)),
        HOME,
    ),
    Kind(
        "Home & Kitchen", "Storage & Organization", 8,
        (("Storage Bins (3 Pack)", 14.99, 39.99), ("Drawer Organizer", 9.99, 24.99), ("Laundry Basket", 14.99, 34.99),
         ("Closet Shelf Organizer", 19.99, 49.99, {"material": ("Fabric",)}),
         ("Food Storage Containers", 19.99, 44.99, {"material": ("Glass", "Plastic")})),
        ("Rubbermaid", "Sterilite", "mDesign", "The Container Store", "IRIS", "Tidyform"),
        ("{adj} {item}, {color}", "{material} {item} - {color}"),
        ("{material} {item_lc} for keeping closets, pantries and drawers tidy.",),
        ("Stackable design saves space.", "Easy to clean.", "BPA free."),
        pick(material=("Plastic", "Fabric", "Bamboo", "Wire"), dimensions=dims(6, 24)),
        HOME,
    ),
    # Beauty & Personal Care -----------------------------------------------------------------------------------
    Kind(
        "Beauty & Personal Care", "Personal Hygiene", 55, (("Hand Soap", 0, 0),),
        ("Dove", "Softsoap", "Method", "Dial", "Mrs. Meyer's", "Bath & Body Works", "Seventh Generation", "Dr. Bronner's",
         "Cetaphil", "Lather & Leaf", "Cleanwell"),
        ("{_benefit} {_noun}, {scent}, {size}{_pack}", "{_noun} - {_benefit}, {scent}, {size}{_pack}"),
        ("Gentle {_noun_lc} with moisturizing ingredients to keep hands soft and clean.",
         "{_benefit} {_noun_lc} {_scent_phrase}.",
         "{_benefit} hand soap that rinses clean without drying skin."),
        ("Kills 99.9% of germs.", "Free of parabens and phthalates.", "Made with plant-derived cleansers.",
         "Recyclable bottle.", "Dermatologist tested.", "Enriched with aloe and vitamin E."),
        _hand_soap, PACKAGING,
    ),
    Kind(
        "Beauty & Personal Care", "Personal Hygiene", 14,
        (("Body Wash", 4.99, 12.99, {"size": ("18 oz", "22 oz", "30 oz")}),
         ("Deodorant", 3.99, 9.99, {"size": ("2.6 oz", "3 oz")}),
         ("Hand Sanitizer", 2.49, 9.99, {"size": ("2 oz", "8 oz", "12 oz")}),
         ("Shower Gel", 4.99, 11.99, {"size": ("16 oz", "24 oz")})),
        ("Dove", "Old Spice", "Degree", "Olay", "Native", "Dial", "Purell", "Irish Spring", "Lather & Leaf"),
        ("{adj} {item}, {scent}, {size}", "{item} - {scent}, {size}"),
        ("{item} with a clean scent for all-day freshness.", "Gentle {item_lc} formulated for sensitive skin."),
        ("Dermatologist tested.", "Paraben-free formula.", "Travel friendly."),
        pick(size=("12 oz",), scent=SCENTS), PACKAGING,
    ),
    Kind(
        "Beauty & Personal Care", "Skincare", 16,
        (("Daily Face Moisturizer", 9.99, 39.99, {"spf": ("SPF 15", "SPF 30", "None")}),
         ("Gentle Facial Cleanser", 7.99, 24.99, {"size": ("8 oz", "12 oz", "16 oz")}),
         ("Mineral Sunscreen", 9.99, 24.99, {"spf": ("SPF 30", "SPF 50"), "size": ("3 oz", "5 oz")}),
         ("Vitamin C Serum", 14.99, 49.99, {"size": ("1 oz",)}), ("Night Cream", 14.99, 59.99),
         ("Lip Balm (4 Pack)", 3.99, 9.99, {"size": ("0.15 oz",)})),
        ("Cetaphil", "CeraVe", "Neutrogena", "L'Oreal", "Olay", "La Roche-Posay", "Aveeno", "CoverGirl", "Glowline"),
        ("{adj} {item}, {size}", "{item} for {skin_type} Skin, {size}"),
        ("{item} made for {skin_type_lc} skin with hyaluronic acid and ceramides.",
         "Lightweight {item_lc} that absorbs quickly and leaves skin smooth."),
        ("Fragrance free and non-comedogenic.", "Dermatologist recommended.", "Suitable for daily use."),
        pick(size=("1.7 oz", "2.5 oz"), skin_type=("Dry", "Oily", "Combination", "Sensitive", "Normal", "All"),
             spf=("None",)),
        ("White", "Blue", "Pink", "Yellow", "Green", "Orange", "Cream"),
    ),
    Kind(
        "Beauty & Personal Care", "Hair Care", 14,
        (("Shampoo", 4.99, 19.99, {"size": ("12 oz", "13.5 oz", "28 oz")}),
         ("Conditioner", 4.99, 19.99, {"size": ("12 oz", "13.5 oz", "28 oz")}),
         ("Ionic Hair Dryer", 29.99, 149.99, {"size": ("1875W",)}),
         ("Ceramic Flat Iron", 24.99, 99.99, {"size": ("1 inch", "1.5 inch")}),
         ("Detangling Brush", 7.99, 19.99, {"size": ("Standard", "Travel")})),
        ("Pantene", "Head & Shoulders", "OGX", "Revlon", "Conair", "Herbal Essences", "Silkline"),
        ("{adj} {item} for {hair_type} Hair, {color}", "{item} - {hair_type} Hair, {size}"),
        ("{item} designed for {hair_type_lc} hair.", "A {adj_lc} {item_lc} for salon results at home."),
        ("Safe for color-treated hair.", "Reduces frizz and adds shine.", "Gentle enough for daily use."),
        pick(hair_type=("Curly", "Fine", "Thick", "Damaged", "All", "Color-Treated"), size=("12 oz",)),
        ("Black", "White", "Pink", "Purple", "Rose Gold", "Teal", "Gold", "Blue"),
    ),
    Kind(
        "Beauty & Personal Care", "Oral Care", 8,
        (("Whitening Toothpaste", 2.99, 8.99, {"size": ("3.8 oz", "4.8 oz", "6 oz")}),
         ("Alcohol-Free Mouthwash", 4.99, 11.99, {"size": ("16.9 fl oz", "33.8 fl oz")}),
         ("Kids Toothpaste", 2.49, 5.99, {"flavor": ("Bubblegum", "Strawberry", "Fruit"), "size": ("4.2 oz",)})),
        ("Crest", "Colgate", "Sensodyne", "Listerine", "Tom's of Maine", "Brightsmile"),
        ("{adj} {item}, {flavor}, {size}", "{item} - {flavor}, {size}"),
        ("{item} that freshens breath with a {flavor_lc} flavor.", "A {adj_lc} {item_lc} for a dentist-clean feel."),
        ("ADA accepted.", "Gentle on enamel and gums.", "Long-lasting fresh breath."),
        pick(flavor=("Mint", "Cool Mint", "Spearmint", "Cinnamon", "Fresh Mint"), size=("4.8 oz",)),
        ("White", "Blue", "Green", "Red", "Teal"),
    ),
    Kind(
        "Beauty & Personal Care", "Oral Care", 6,
        (("Electric Toothbrush", 24.99, 129.99), ("Water Flosser", 29.99, 79.99),
         ("Soft Toothbrushes (4 Pack)", 4.99, 12.99, {"battery_life": ("None",)})),
        ("Oral-B", "Philips Sonicare", "Waterpik", "Colgate", "Brightsmile"),
        ("{adj} {item}, {color}", "{item} with {feature} - {color}"),
        ("{item} with {feature_lc} for a deeper clean.",),
        ("Dentist recommended.", "Travel case included."),
        pick(battery_life=("2 weeks", "3 weeks", "30 days"), feature=("Pressure Sensor", "2-Minute Timer", "3 Cleaning Modes")),
        ("White", "Blue", "Black", "Pink", "Teal", "Green", "Purple"),
    ),
    Kind(
        "Beauty & Personal Care", "Makeup", 10, (("Makeup", 0, 0),),
        ("Maybelline", "CoverGirl", "L'Oreal", "e.l.f.", "NYX", "Revlon", "Lumiere"),
        ("{adj} {_noun}, {shade}", "{_noun} - {shade}, {finish} Finish"),
        ("Long-wearing {_noun_lc} in {shade_lc} with a {finish_lc} finish.", "{_noun} that glides on smoothly and lasts all day."),
        ("Cruelty free.", "Vegan formula.", "Smudge-proof and transfer-resistant."),
        _makeup, (),
    ),
    Kind(
        "Beauty & Personal Care", "Bath & Body", 8,
        (("Body Lotion", 5.99, 19.99, {"size": ("8 oz", "16 oz", "18 oz")}),
         ("Bath Bombs (6 Pack)", 9.99, 29.99, {"size": ("4 oz each",)}),
         ("Sugar Body Scrub", 7.99, 24.99, {"size": ("8 oz", "18 oz")}),
         ("Bubble Bath", 4.99, 14.99, {"size": ("16 oz", "32 oz")}),
         ("Body Mist", 9.99, 24.99, {"size": ("8 fl oz",)})),
        ("Bath & Body Works", "Dove", "Tree Hut", "Jergens", "Aveeno", "Velvet Petal"),
        ("{adj} {item}, {scent}, {size}", "{item} - {scent}"),
        ("Indulgent {item_lc} with a soothing scent.", "{item} that leaves skin soft and smelling wonderful."),
        ("Made with shea butter and essential oils.", "Great as a gift.", "Paraben free."),
        pick(scent=SCENTS, size=("8 oz",)),
        ("Pink", "Purple", "White", "Blue", "Green", "Yellow", "Coral"),
    ),
    # Office & School Supplies (kids' school supplies first: the demo searches for them) ----------------------
    Kind(
        "Office & School Supplies", "School Supplies", 16, (("School Supply Kit", 0, 0),),
        ("Crayola", "Five Star", "Mead", "Yoobi", "BrightStart", "ClassPal", "Kidsy", "Cra-Z-Art"),
        ("{_level} School Supply Kit, {pieces} Pieces, {color}", "Back-to-School Supply Bundle for {_grades}, {color}",
         "{adj} Kids School Supply Box, {pieces} Pieces"),
        ("Complete school supply kit for {_grades_lc} with {pieces} pieces.",
         "Everything a student needs for the first day of school, packed in one {color_lc} kit."),
        ("Includes pencils, erasers, crayons, scissors, and more.", "Teacher-approved list of essentials.",
         "Non-toxic and kid-safe materials.", "A great back-to-school gift."),
        _school_kit, KIDS,
    ),
    Kind(
        "Office & School Supplies", "School Supplies", 14,
        (("Kids Backpack", 19.99, 59.99, {"size": ("14 inch", "16 inch", "17 inch")}),
         ("Pencil Case", 5.99, 16.99, {"size": ("Standard", "Large")}),
         ("Insulated Lunch Box", 9.99, 29.99, {"size": ("Standard", "Large")}),
         ("Kids Water Bottle", 8.99, 24.99, {"size": ("12 oz", "14 oz", "16 oz"), "material": ("Stainless Steel", "Tritan Plastic")})),
        ("JanSport", "Yoobi", "Skip Hop", "Crayola", "BentoGo", "Kidsy", "ClassPal", "Five Star"),
        ("{adj} {item} for {age_range}, {pattern}, {color}", "{item} - {pattern}, {color}", "{pattern} {item}, {size}, {color}"),
        ("{item} for {age_range_lc} with a fun {pattern_lc} design in {color_lc}.",
         "Durable, easy-to-clean {item_lc} made for the school year."),
        ("Water-resistant and wipes clean.", "Name tag inside.", "Lightweight for little shoulders and hands.",
         "Built to last the whole school year."),
        pick(size=("Standard",), age_range=("Ages 3-5", "Ages 5-8", "Ages 8-12", "Teens"),
             pattern=("Dinosaur", "Unicorn", "Space", "Rainbow", "Camo", "Floral", "Solid", "Soccer", "Sharks", "Galaxy"),
             material=("Polyester", "Nylon", "Recycled Polyester")),
        KIDS,
    ),
    Kind(
        "Office & School Supplies", "School Supplies", 34,
        (("Washable Crayons", 1.99, 6.99, {"count": ("16 count", "24 count", "24 count", "48 count", "64 count")}),
         ("Colored Pencils", 3.99, 14.99, {"count": ("12 count", "24 count", "36 count", "50 count")}),
         ("Washable Markers", 3.99, 12.99, {"count": ("8 count", "10 count", "12 count", "20 count")}),
         ("Glue Sticks", 2.99, 9.99, {"count": ("6 count", "12 count", "30 count")}),
         ("Kids Safety Scissors", 2.49, 7.99, {"count": ("1 count", "2 count", "12 count")}),
         ("#2 Pencils", 2.99, 9.99, {"count": ("12 count", "24 count", "48 count", "96 count")}),
         ("Pink Erasers", 1.99, 5.99, {"count": ("3 count", "10 count", "12 count")}),
         ("Wide Ruled Composition Notebook", 1.49, 4.99, {"count": ("1 count", "4 count", "6 count")}),
         ("Pencil Sharpener", 2.99, 14.99, {"count": ("1 count", "2 count")}),
         ("Watercolor Paint Set", 3.99, 12.99, {"count": ("8 count", "16 count", "24 count")}),
         ("Dry Erase Markers", 4.99, 14.99, {"count": ("4 count", "8 count", "12 count")}),
         ("Plastic Ruler", 0.99, 3.99, {"count": ("1 count", "2 count", "12 count")})),
        ("Crayola", "Elmer's", "Ticonderoga", "Fiskars", "Mead", "Paper Mate", "Cra-Z-Art", "Prismacolor", "Expo",
         "Yoobi", "BrightStart", "ClassPal"),
        ("{item}, {count}, {color}", "{adj} {item} for Kids, {count}", "{item} - {count}, {color}"),
        ("{item} in a {count} pack for school, home and art projects.",
         "Kid-friendly {item_lc}, easy for small hands to hold and use."),
        ("Non-toxic and AP certified.", "Ideal for classrooms and homeschool.", "Bright, vibrant colors.",
         "Great for back-to-school lists."),
        pick(count=("12 count",), grade_level=("Pre-K", "K-2", "K-5", "3-5", "6-8")),
        KIDS,
    ),
    Kind(
        "Office & School Supplies", "Paper Products", 10,
        (("Spiral Notebook", 1.99, 7.99),
         ("Sticky Notes", 3.99, 14.99, {"sheets": ("12 pads", "24 pads"), "ruling": ("Blank", "Lined")}),
         ("Copy Paper", 7.99, 49.99, {"sheets": ("500 sheets", "2500 sheets"), "ruling": ("Blank",)}),
         ("Index Cards", 1.99, 6.99, {"sheets": ("100 cards", "300 cards"), "ruling": ("Blank", "Ruled")}),
         ("Graph Paper Pad", 2.99, 8.99, {"ruling": ("Grid",)})),
        ("Post-it", "Mead", "Five Star", "Hammermill", "Oxford", "Amazon Basics", "Paperline"),
        ("{item}, {sheets}, {color}", "{adj} {item} - {ruling}, {sheets}"),
        ("{item} with {sheets_lc}, {ruling_lc}.", "Smooth, bleed-resistant {item_lc} for notes and assignments."),
        ("Acid-free paper.", "Sheets tear out cleanly.", "Made from sustainably sourced fiber."),
        pick(sheets=("70 sheets", "100 sheets", "150 sheets"), ruling=("Wide Ruled", "College Ruled", "Blank", "Grid")),
        KIDS,
    ),
    Kind(
        "Office & School Supplies", "Writing Instruments", 10,
        (("Gel Pens", 4.99, 19.99), ("Ballpoint Pens", 2.99, 12.99),
         ("Highlighters", 3.99, 11.99, {"tip": ("Chisel", "Fine"), "ink_color": ("Yellow", "Assorted", "Pastel")}),
         ("Permanent Markers", 4.99, 16.99, {"tip": ("Fine", "Ultra Fine", "Chisel")}),
         ("Mechanical Pencils", 3.99, 12.99, {"tip": ("0.5mm", "0.7mm"), "ink_color": ("Graphite",)}),
         ("Fountain Pen", 14.99, 59.99, {"tip": ("Fine", "Medium"), "count": ("1 count",)})),
        ("Pilot", "Paper Mate", "BIC", "Sharpie", "Uni-ball", "Zebra", "Pentel", "Inkwell"),
        ("{item}, {tip} Tip, {count}", "{adj} {item} - {ink_color}, {count}"),
        ("Smooth-writing {item_lc} with a {tip_lc} tip.", "Reliable {item_lc} for office and school."),
        ("Quick-drying, smear-resistant ink.", "Comfortable rubber grip.", "Refillable."),
        pick(tip=("Fine", "Medium", "Bold", "0.5mm", "0.7mm"), ink_color=("Black", "Blue", "Assorted", "Red"),
             count=("4 count", "8 count", "12 count", "24 count")),
        GENERAL,
    ),
    Kind(
        "Office & School Supplies", "Binders & Folders", 8,
        (("3-Ring Binder", 2.99, 14.99),
         ("Pocket Folders (6 Pack)", 3.99, 11.99, {"capacity": ("2 pockets", "3 pockets")}),
         ("Expanding File Folder", 9.99, 24.99, {"capacity": ("7 pockets", "13 pockets", "26 pockets")}),
         ("Sheet Protectors", 5.99, 14.99, {"capacity": ("50 sleeves", "100 sleeves", "200 sleeves")})),
        ("Avery", "Five Star", "Mead", "Smead", "Cardinal", "Oxford", "Sharpie"),
        ("{adj} {item}, {capacity}, {color}", "{item} - {color}"),
        ("{item} ({capacity_lc}) for keeping notes and handouts organized.", "Sturdy {item_lc} for school and office."),
        ("Tear-resistant edges.", "Clear overlay for custom covers.", "Fits standard letter-size paper."),
        pick(capacity=("0.5 inch", "1 inch", "1.5 inch", "2 inch", "3 inch"), material=("Poly", "Vinyl", "Cardboard")),
        GENERAL,
    ),
    Kind(
        "Office & School Supplies", "Office Electronics", 8,
        (("Scientific Calculator", 9.99, 29.99, {"power": ("Battery", "Solar")}),
         ("Graphing Calculator", 89.99, 149.99, {"power": ("Battery", "Rechargeable Battery")}),
         ("Label Maker", 24.99, 69.99), ("Paper Shredder", 39.99, 149.99, {"power": ("AC Adapter",)}),
         ("Thermal Laminator", 24.99, 59.99, {"power": ("AC Adapter",)})),
        ("Texas Instruments", "Casio", "Brother", "DYMO", "Fellowes", "Aurora", "HP", "Epson"),
        ("{adj} {item}, {color}", "{item} - {power}, {color}"),
        ("{item} for classrooms, offices and home study.", "A {adj_lc} {item_lc} that runs on {power_lc} power."),
        ("Auto shut-off saves power.", "Compact for any desk.", "Easy to use right out of the box."),
        pick(power=("Battery", "AC Adapter", "Rechargeable Battery"), warranty=WARRANTY),
        TECH,
    ),
    Kind(
        "Office & School Supplies", "Desk Accessories", 6,
        (("Desk Organizer", 12.99, 34.99), ("Stapler", 6.99, 24.99, {"material": ("Metal", "Plastic")}),
         ("Tape Dispenser", 4.99, 14.99, {"material": ("Metal", "Plastic")}),
         ("Desk Pad", 9.99, 29.99, {"material": ("Leather", "Felt", "Cork")}), ("Letter Tray", 9.99, 24.99)),
        ("Swingline", "Scotch", "Bostitch", "Post-it", "Poppin", "Deskwise"),
        ("{adj} {item}, {material}, {color}", "{item} - {color}"),
        ("{material} {item_lc} that keeps your workspace neat.",),
        ("Non-slip base.", "Minimalist design.", "Built for daily office use."),
        pick(material=("Metal Mesh", "Bamboo", "Plastic", "Acrylic")),
        GENERAL,
    ),
    # Electronics (monitors and anti-glare screen protectors first: the demo searches for them) ---------------
    Kind(
        "Electronics", "Monitors", 60, (("Computer Monitor", 0, 0),),
        ("Dell", "LG", "Samsung", "ASUS", "Acer", "BenQ", "ViewSonic", "HP", "Lenovo", "AOC", "MSI", "PixelPeak", "Visionary"),
        ("{_inch}-inch {_label} {panel_type} {_use} Monitor", "{adj} {_inch}-inch {_label} {_use} Monitor, {refresh_rate}",
         '{_inch}" {_label} {_use} Monitor with {_feature}'),
        ("{_label} {_inch}-inch monitor with {panel_type} panel technology and a {refresh_rate} refresh rate.",
         "Professional-grade {_label} monitor with {panel_type} panel for accurate colors and wide viewing angles.",
         "{_use} monitor with {_feature_lc} and {connectivity} inputs."),
        ("Perfect for graphic design and video editing.", "Flicker-free backlight reduces eye strain.",
         "Thin bezels for seamless multi-monitor setups.", "Tilt, swivel and height adjustable stand.",
         "VESA mount compatible.", "Fast response time for smooth gaming."),
        _monitor, TECH,
    ),
    Kind(
        "Electronics", "Accessories", 45, (("Screen Protector", 0, 0),),
        ("3M", "Kensington", "Targus", "ZAGG", "amFilm", "Supershieldz", "JETech", "GlareGuard", "ClearView", "Belkin"),
        ("Anti-Glare {_style} for {size} {_device}", "{_variant} Anti-Glare {_style} for {size} {_device} ({pack})",
         "Anti-Glare {_variant} {_style}, {size} {_device}"),
        ("Anti-glare screen protector for {size} {_device_lc} that cuts reflections and glare.",
         "{material} that reduces glare and fingerprints on {size} {_device_lc}."),
        ("Bubble-free installation.", "Filters harmful blue light to reduce eye strain.",
         "Keeps the screen readable under bright office lights.", "Removes cleanly without residue.",
         "Preserves touch sensitivity and clarity."),
        _screen_protector, (),
    ),
    Kind(
        "Electronics", "Accessories", 36,
        (("Wireless Mouse", 9.99, 79.99, {"connectivity": ("Bluetooth", "2.4 GHz Wireless"),
          "feature": ("Ergonomic Design", "Silent Clicks", "Multi-Device Pairing")}),
         ("Mechanical Keyboard", 39.99, 149.99, {"connectivity": ("USB-C", "Bluetooth", "2.4 GHz Wireless"),
          "feature": ("RGB Lighting", "Hot-Swappable Switches", "Multi-Device Pairing")}),
         ("USB-C Hub", 19.99, 69.99, {"connectivity": ("USB-C",), "feature": ("7-in-1 Ports", "100W Power Delivery", "4K HDMI Output")}),
         ("Laptop Stand", 19.99, 59.99, {"connectivity": ("None",), "feature": ("Adjustable Height", "Aluminum Build", "Foldable Design")}),
         ("Monitor Arm", 29.99, 129.99, {"connectivity": ("None",), "feature": ("Gas Spring", "Dual Monitor Support", "Cable Management")}),
         ("1080p Webcam", 29.99, 99.99, {"connectivity": ("USB-A", "USB-C"), "feature": ("Auto Focus", "Built-in Microphone", "Privacy Cover")}),
         ("HDMI Cable (2 Pack)", 7.99, 19.99, {"connectivity": ("HDMI 2.1",), "feature": ("8K Support", "Braided Nylon Jacket")}),
         ("Wireless Charger", 14.99, 49.99, {"connectivity": ("Qi Wireless",), "feature": ("Fast Charging", "3-in-1 Stand")})),
        ("Logitech", "Anker", "Razer", "Corsair", "Belkin", "Amazon Basics", "Satechi", "UGREEN", "Kensington"),
        ("{adj} {item}, {color}", "{item} with {feature}, {color}"),
        ("{adj} {item_lc} with {feature_lc} for home and office setups.", "Reliable {item_lc} in {color_lc}."),
        ("Plug and play on Windows, macOS and ChromeOS.", "Compact and travel friendly.", "Backed by a multi-year warranty."),
        pick(weight=lbs(0.1, 4.0), warranty=WARRANTY, connectivity=("USB-C",), feature=("Ergonomic Design",)),
        TECH,
    ),
    Kind(
        "Electronics", "Audio", 24,
        (("Wireless Earbuds", 29.99, 249.99), ("Over-Ear Headphones", 49.99, 349.99),
         ("Bluetooth Speaker", 24.99, 199.99, {"feature": ("Waterproof Design", "Deep Bass", "360-Degree Sound")})),
        ("Sony", "Bose", "JBL", "Logitech", "Anker", "Sennheiser", "Beats", "Skullcandy", "SoundCore"),
        ("{adj} {item}, {color}", "{item} with {feature}, {color}"),
        ("{item} with {feature_lc} and up to {battery_life} of playback.", "Rich, balanced sound in a {color_lc} finish."),
        ("Bluetooth 5.3 for a stable connection.", "Water resistant for workouts.", "Built-in microphone for calls."),
        pick(weight=lbs(0.1, 3.5), warranty=WARRANTY, battery_life=("8 hours", "12 hours", "20 hours", "30 hours", "40 hours"),
             feature=("Active Noise Cancelling", "Deep Bass", "Spatial Audio", "Fast Charging")),
        TECH,
    ),
    Kind(
        "Electronics", "TVs", 10, (("Smart TV", 0, 0),),
        ("Samsung", "LG", "Sony", "TCL", "Hisense", "Vizio", "Panasonic", "Sharp"),
        ("{_inch}-inch {resolution} {display_type} Smart TV", "{adj} {_inch}-inch {display_type} TV, {resolution}"),
        ("{_inch}-inch {display_type} smart TV with {resolution} picture and built-in streaming apps.",),
        ("Voice remote included.", "HDR for brighter highlights and deeper blacks.", "Game mode with low input lag."),
        _tv, TECH,
    ),
    Kind(
        "Electronics", "Storage", 10,
        (("Portable SSD", 49.99, 249.99, {"capacity": ("500 GB", "1 TB", "2 TB", "4 TB")}),
         ("USB Flash Drive", 6.99, 39.99, {"capacity": ("32 GB", "64 GB", "128 GB", "256 GB"), "speed": ("100 MB/s", "150 MB/s", "400 MB/s")}),
         ("microSD Card", 9.99, 59.99, {"capacity": ("64 GB", "128 GB", "256 GB", "512 GB"), "speed": ("100 MB/s", "170 MB/s")}),
         ("External Hard Drive", 59.99, 199.99, {"capacity": ("1 TB", "2 TB", "4 TB", "5 TB"), "speed": ("120 MB/s", "140 MB/s")})),
        ("SanDisk", "Samsung", "Western Digital", "Seagate", "Kingston", "Crucial", "LaCie"),
        ("{item}, {capacity}, {color}", "{adj} {item} - {capacity}"),
        ("{capacity} {item_lc} with transfer speeds up to {speed}.", "Reliable {item_lc} for backups, photos and games."),
        ("Shock and drop resistant.", "Works with PC, Mac and consoles.", "Password protection built in."),
        pick(weight=lbs(0.1, 1.2), warranty=WARRANTY, capacity=("1 TB",), speed=("1050 MB/s", "2000 MB/s")),
        TECH,
    ),
    Kind(
        "Electronics", "Networking", 6,
        (("Wi-Fi 6 Router", 59.99, 249.99), ("Mesh Wi-Fi System (3 Pack)", 149.99, 449.99),
         ("Wi-Fi Range Extender", 19.99, 79.99)),
        ("TP-Link", "Netgear", "ASUS", "Linksys", "eero", "Ubiquiti"),
        ("{adj} {item}, {speed}", "{item} - {coverage} Coverage"),
        ("{item} with speeds up to {speed} and {coverage} of coverage.",),
        ("Easy app-based setup.", "Parental controls included.", "WPA3 security."),
        pick(weight=lbs(0.3, 3.0), warranty=WARRANTY, speed=("AX1800", "AX3000", "AX5400"),
             coverage=("1,500 sq ft", "3,000 sq ft", "5,500 sq ft")),
        TECH,
    ),
    Kind(
        "Electronics", "Smartphones", 8, (("Smartphone", 0, 0),),
        ("Samsung", "Google", "Motorola", "OnePlus", "Nokia", "Nothing"),
        ("{adj} 5G Smartphone, {storage}, {color}", "Unlocked Smartphone {storage} - {color}"),
        ("Unlocked 5G smartphone with {storage} of storage and a {screen_size} display.",),
        ("All-day battery life.", "Triple camera system.", "Water and dust resistant."),
        _smartphone, TECH,
    ),
    Kind(
        "Electronics", "Computers", 10,
        (("Laptop", 399.99, 1499.99), ("2-in-1 Laptop", 549.99, 1299.99), ("Chromebook", 199.99, 499.99)),
        ("Dell", "HP", "Lenovo", "ASUS", "Acer", "Microsoft", "MSI"),
        ("{adj} {screen_size} {item}, {processor}, {memory} RAM", "{item} {screen_size} - {storage}, {color}"),
        ("{screen_size} {item_lc} with {processor}, {memory} of memory and a {storage}.",),
        ("Backlit keyboard.", "Fast charging battery.", "Thin and light for travel."),
        _laptop, TECH,
    ),
    # Grocery --------------------------------------------------------------------------------------------------
    Kind(
        "Grocery", "Snacks", 10,
        (("Potato Chips", 2.49, 5.99, {"flavor": ("Sea Salt", "Barbecue", "Sour Cream & Onion", "Salt & Vinegar", "Jalapeno"),
          "size": ("5 oz", "8 oz", "10 oz")}),
         ("Granola Bars (12 Pack)", 3.99, 8.99, {"flavor": ("Oats & Honey", "Dark Chocolate", "Peanut Butter")}),
         ("Trail Mix", 4.99, 12.99, {"flavor": ("Original", "Dark Chocolate", "Tropical"), "size": ("10 oz", "26 oz")}),
         ("Crackers", 2.99, 5.99, {"flavor": ("Original", "Cheddar", "Whole Wheat"), "size": ("8 oz", "13.7 oz")}),
         ("Popcorn", 2.99, 6.99, {"flavor": ("Sea Salt", "Butter", "White Cheddar", "Kettle Corn"), "size": ("4.4 oz", "6 oz")})),
        ("Lay's", "Nature Valley", "KIND", "Kettle Brand", "Ritz", "SkinnyPop", "Planters", "Harvest Hill"),
        ("{flavor} {item}, {size}", "{adj} {item} - {flavor}, {size}"),
        ("Crunchy {flavor_lc} {item_lc} for lunchboxes and snacking on the go.",),
        ("No artificial flavors.", "Gluten free.", "Resealable bag."),
        pick(flavor=("Original",), size=("8.4 oz",)),
        PACKAGING,
    ),
    Kind(
        "Grocery", "Beverages", 10,
        (("Sparkling Water (12 Pack)", 4.99, 8.99, {"flavor": ("Lime", "Berry", "Mango", "Lemon", "Pure")}),
         ("Ground Coffee", 6.99, 16.99, {"flavor": ("Dark Roast", "Medium Roast", "Breakfast Blend"), "size": ("12 oz", "24 oz")}),
         ("Green Tea Bags", 3.99, 8.99, {"flavor": ("Original", "Lemon", "Jasmine"), "size": ("20 count", "40 count")}),
         ("Cold Brew Coffee", 4.99, 9.99, {"flavor": ("Black", "Vanilla", "Caramel"), "size": ("32 fl oz",)}),
         ("Sports Drink (8 Pack)", 5.99, 10.99, {"flavor": ("Fruit Punch", "Lemon-Lime", "Cool Blue")})),
        ("LaCroix", "Starbucks", "Folgers", "Lipton", "Gatorade", "Bigelow", "Peet's", "Morning Ridge"),
        ("{flavor} {item}, {size}", "{adj} {item} - {flavor}"),
        ("Refreshing {flavor_lc} {item_lc}.", "{item} with a smooth {flavor_lc} taste."),
        ("Responsibly sourced.", "Great for the office or home.", "Perfect for on-the-go."),
        pick(flavor=("Original",), size=("12 fl oz",)),
        PACKAGING,
    ),
    Kind(
        "Grocery", "Pantry", 10,
        (("Extra Virgin Olive Oil", 7.99, 19.99, {"size": ("16.9 fl oz", "25.5 fl oz", "33.8 fl oz")}),
         ("Spaghetti Pasta", 1.29, 3.99, {"size": ("16 oz", "32 oz")}),
         ("Creamy Peanut Butter", 2.99, 7.99, {"size": ("16 oz", "28 oz", "40 oz")}),
         ("Canned Diced Tomatoes", 0.99, 2.99, {"size": ("14.5 oz", "28 oz")}),
         ("Canned Chickpeas", 0.99, 2.49, {"size": ("15 oz",)}),
         ("Chicken Noodle Soup", 1.49, 3.99, {"size": ("10.75 oz", "18.6 oz")}),
         ("Long Grain Rice", 2.99, 9.99, {"size": ("2 lb", "5 lb", "10 lb")})),
        ("Barilla", "Jif", "Progresso", "Del Monte", "Heinz", "Bertolli", "Goya", "Campbell's", "Kraft", "Pantry Lane"),
        ("{adj} {item}, {size}", "{item} - {size}"),
        ("Pantry staple {item_lc} for quick weeknight meals.",),
        ("Non-GMO.", "No preservatives.", "Family size."),
        pick(size=("16 oz",)),
        PACKAGING,
    ),
    Kind(
        "Grocery", "Baking", 6,
        (("All-Purpose Flour", 2.99, 6.99, {"size": ("2 lb", "5 lb")}),
         ("Semi-Sweet Chocolate Chips", 2.99, 5.99, {"size": ("12 oz", "24 oz")}),
         ("Chocolate Cake Mix", 1.49, 3.99, {"size": ("15.25 oz",)}),
         ("Pure Vanilla Extract", 4.99, 12.99, {"size": ("2 fl oz", "4 fl oz")}),
         ("Granulated Sugar", 2.49, 5.99, {"size": ("4 lb", "10 lb")})),
        ("Betty Crocker", "Pillsbury", "Hershey's", "King Arthur", "Nestle", "Domino", "McCormick"),
        ("{item}, {size}", "{adj} {item} - {size}"),
        ("{item} for cookies, cakes and weekend baking.",),
        ("Kosher.", "Resealable package."),
        pick(size=("16 oz",)),
        PACKAGING,
    ),
    Kind(
        "Grocery", "Breakfast", 6,
        (("Whole Grain Cereal", 2.99, 6.99, {"flavor": ("Original", "Honey Nut", "Cinnamon", "Berry")}),
         ("Instant Oatmeal (10 Packets)", 2.99, 5.99, {"flavor": ("Original", "Maple & Brown Sugar", "Apple Cinnamon")}),
         ("Pancake Mix", 2.49, 5.49, {"flavor": ("Original", "Buttermilk", "Protein")}),
         ("Maple Syrup", 5.99, 14.99, {"flavor": ("Amber Rich", "Dark Robust"), "size": ("12.5 fl oz", "32 fl oz")})),
        ("Kellogg's", "Quaker", "General Mills", "Post", "Sunrise Mill"),
        ("{flavor} {item}, {size}", "{item} - {flavor}"),
        ("A wholesome {flavor_lc} {item_lc} to start the day.",),
        ("Good source of fiber.", "Made with whole grains."),
        pick(flavor=("Original",), size=("12 oz", "18 oz", "32 oz")),
        PACKAGING,
    ),
    # Pet Supplies ---------------------------------------------------------------------------------------------
    Kind(
        "Pet Supplies", "Dogs", 8,
        (("Dry Dog Food", 19.99, 79.99), ("Grain-Free Dog Food", 29.99, 89.99),
         ("Dog Treats", 4.99, 19.99, {"size": ("6 oz", "16 oz", "25 oz")})),
        ("Blue Buffalo", "Purina", "Pedigree", "Hill's", "Nutro", "Happy Tails"),
        ("{adj} {item} for {dog_size} Dogs, {flavor}, {size}", "{item} - {flavor}, {size}"),
        ("{flavor} {item_lc} made for {dog_size_lc} dogs.", "Balanced {item_lc} your dog will love."),
        ("Vet recommended.", "Real meat is the first ingredient.", "No artificial preservatives."),
        pick(dog_size=("Small Breed", "Medium", "Large Breed", "All"), flavor=("Chicken & Rice", "Lamb", "Salmon", "Beef"),
             size=("4 lb", "15 lb", "30 lb")),
        PACKAGING,
    ),
    Kind(
        "Pet Supplies", "Dogs", 6,
        (("Dog Leash", 9.99, 29.99), ("Dog Collar", 7.99, 24.99), ("No-Pull Dog Harness", 14.99, 39.99),
         ("Collapsible Dog Bowl", 6.99, 14.99, {"material": ("Silicone",)})),
        ("Kong", "Ruffwear", "PetSafe", "Blueberry Pet", "Happy Tails"),
        ("{adj} {item}, {size}, {color}", "{item} - {color}, {size}"),
        ("{material} {item_lc} sized {size_lc} for daily walks.",),
        ("Reflective stitching for night walks.", "Adjustable fit.", "Durable hardware."),
        pick(size=("Small", "Medium", "Large"), material=("Nylon", "Leather", "Padded Nylon")),
        GENERAL,
    ),
    Kind(
        "Pet Supplies", "Cats", 12,
        (("Clumping Cat Litter", 9.99, 29.99, {"size": ("14 lb", "25 lb", "40 lb")}),
         ("Wet Cat Food (12 Pack)", 9.99, 24.99, {"size": ("3 oz cans", "5.5 oz cans")}),
         ("Cat Tree", 39.99, 149.99, {"size": ("32 inch", "52 inch", "72 inch")}),
         ("Cat Scratching Post", 14.99, 39.99, {"size": ("24 inch", "32 inch")}),
         ("Cat Toys Variety Pack", 7.99, 19.99, {"size": ("10 count", "20 count")})),
        ("Friskies", "Fresh Step", "Tidy Cats", "Purina", "Meow Mix", "Frisco", "Whisker Lane"),
        ("{adj} {item}, {size}", "{item} - {size}, {color}"),
        ("{item} made for curious, happy cats.",),
        ("Veterinarian approved.", "Cats love it.", "Great value."),
        pick(size=("14 lb",)),
        GENERAL,
    ),
    Kind(
        "Pet Supplies", "Pet Beds", 6,
        (("Orthopedic Dog Bed", 29.99, 129.99), ("Calming Pet Bed", 19.99, 69.99), ("Cat Window Perch", 19.99, 44.99)),
        ("Furhaven", "Bedsure", "Oxbow", "K&H", "Snoozy Paws"),
        ("{adj} {item}, {size}, {color}", "{item} - {size}, {color}"),
        ("Cozy {item_lc} with supportive {material_lc} and a removable cover.",),
        ("Machine-washable cover.", "Non-slip bottom."),
        pick(size=("Small", "Medium", "Large", "X-Large"), material=("Memory Foam", "Plush Polyester", "Faux Fur")),
        HOME,
    ),
    Kind(
        "Pet Supplies", "Pet Toys", 6,
        (("Chew Toy", 4.99, 19.99, {"material": ("Rubber", "Nylon")}), ("Rope Toy", 5.99, 14.99, {"material": ("Cotton Rope",)}),
         ("Squeaky Plush Toy", 4.99, 14.99, {"material": ("Plush",)}), ("Fetch Ball Launcher", 14.99, 49.99)),
        ("Kong", "Nylabone", "Chuckit!", "Petstages", "Outward Hound", "Happy Tails"),
        ("{adj} {item}, {color}", "{item} - {size}, {color}"),
        ("Durable {item_lc} for playtime and training.",),
        ("Tough enough for strong chewers.", "Bright colors are easy to spot."),
        pick(size=("Small", "Medium", "Large"), material=("Rubber", "Plastic")),
        KIDS,
    ),
    Kind(
        "Pet Supplies", "Fish & Small Animals", 5,
        (("Aquarium Starter Kit", 39.99, 149.99, {"size": ("5 gallon", "10 gallon", "20 gallon")}),
         ("Hamster Cage", 29.99, 89.99, {"size": ("24 inch", "32 inch")}),
         ("Timothy Hay", 9.99, 24.99, {"size": ("40 oz", "96 oz")}),
         ("Reptile Heat Lamp", 14.99, 39.99, {"size": ("75W", "100W")})),
        ("Tetra", "Oxbow", "Kaytee", "Zoo Med", "Fluval", "Aqueon"),
        ("{adj} {item}, {size}", "{item} - {size}, {color}"),
        ("{item} for happy, healthy small pets.",),
        ("Easy to set up.", "Includes everything to get started."),
        pick(size=("10 gallon",)),
        GENERAL,
    ),
    # Clothing -------------------------------------------------------------------------------------------------
    Kind(
        "Clothing", "Men's", 14,
        (("Crew Neck T-Shirt", 9.99, 29.99, {"material": ("Cotton", "Cotton Blend", "Polyester")}),
         ("Five-Pocket Jeans", 29.99, 89.99, {"size": ("30W x 30L", "32W x 30L", "32W x 32L", "34W x 32L", "36W x 32L"),
          "material": ("Denim", "Stretch Denim"), "fit": ("Slim Fit", "Straight Fit", "Relaxed Fit")}),
         ("Pullover Hoodie", 24.99, 69.99, {"material": ("Cotton Blend", "Fleece")}),
         ("Polo Shirt", 19.99, 49.99, {"material": ("Cotton Pique", "Polyester")}),
         ("Chino Pants", 24.99, 59.99, {"material": ("Cotton Twill", "Stretch Cotton")}),
         ("Flannel Shirt", 19.99, 49.99, {"material": ("Cotton Flannel",)})),
        ("Levi's", "Hanes", "Gap", "Ralph Lauren", "Carhartt", "Champion", "Tommy Hilfiger", "Northbound"),
        ("Men's {item}, {color}, {size}", "Men's {adj} {item} - {color}, {size}"),
        ("Men's {material_lc} {item_lc} with a {fit_lc}.", "Wardrobe-staple {item_lc} in {color_lc}."),
        ("Tag-free for comfort.", "Pre-shrunk fabric.", "Holds its shape wash after wash."),
        pick(size=("S", "M", "M", "L", "L", "XL", "XXL"), material=("Cotton",), care=("Machine Wash", "Machine Wash", "Hand Wash"),
             fit=("Regular Fit", "Slim Fit", "Relaxed Fit")),
        APPAREL,
    ),
    Kind(
        "Clothing", "Women's", 14,
        (("Wrap Dress", 29.99, 89.99, {"material": ("Rayon", "Polyester", "Cotton", "Silk")}),
         ("High-Waisted Leggings", 14.99, 49.99, {"material": ("Nylon Spandex", "Cotton Spandex"), "fit": ("Compression Fit",)}),
         ("Cardigan Sweater", 24.99, 69.99, {"material": ("Wool Blend", "Cotton", "Cashmere Blend")}),
         ("Button-Down Blouse", 19.99, 59.99, {"material": ("Silk", "Polyester", "Cotton", "Linen")}),
         ("Midi Skirt", 19.99, 49.99, {"material": ("Linen", "Cotton", "Polyester")}),
         ("Denim Jacket", 39.99, 89.99, {"material": ("Denim",)})),
        ("Ralph Lauren", "Gap", "Old Navy", "Calvin Klein", "Madewell", "Lululemon", "Wildflower Lane"),
        ("Women's {item}, {color}, {size}", "Women's {adj} {item} - {color}, {size}"),
        ("Women's {material_lc} {item_lc} with a {fit_lc}.", "Versatile {item_lc} in {color_lc} for work or weekend."),
        ("Soft, breathable fabric.", "Flattering fit.", "Easy care."),
        pick(size=("XS", "S", "M", "M", "L", "XL"), material=("Cotton",), care=("Machine Wash", "Hand Wash", "Dry Clean Only"),
             fit=("Regular Fit", "Slim Fit", "Relaxed Fit")),
        APPAREL,
    ),
    Kind(
        "Clothing", "Kids'", 10,
        (("Kids Graphic T-Shirt", 7.99, 19.99), ("Kids Rain Jacket", 19.99, 49.99, {"material": ("Nylon", "Polyester")}),
         ("Kids Pajama Set", 12.99, 29.99), ("Kids Joggers", 9.99, 24.99, {"material": ("Cotton", "Fleece")}),
         ("School Uniform Polo", 7.99, 19.99, {"pattern": ("Solid",)})),
        ("Carter's", "OshKosh", "Gap Kids", "Cat & Jack", "Old Navy", "Little Sprout"),
        ("{item}, {color}, Size {size}", "{adj} {item} - {pattern}, {color}"),
        ("Comfy {item_lc} with a fun {pattern_lc} print.", "{item} made for school days and playtime."),
        ("Tagless and soft.", "Machine washable.", "Reinforced seams for active kids."),
        pick(size=("2T", "3T", "4T", "5", "6", "7", "8", "10", "12", "14"), material=("Cotton",), care=("Machine Wash",),
             pattern=("Dinosaur", "Stripes", "Space", "Floral", "Solid", "Rainbow")),
        KIDS,
    ),
    Kind(
        "Clothing", "Shoes", 12,
        (("Running Shoes", 49.99, 159.99, {"material": ("Mesh", "Knit")}),
         ("Canvas Sneakers", 29.99, 69.99, {"material": ("Canvas",)}),
         ("Ankle Boots", 79.99, 199.99, {"material": ("Leather", "Suede")}),
         ("Slip-On Loafers", 39.99, 99.99, {"material": ("Leather", "Suede")}),
         ("Kids Light-Up Sneakers", 24.99, 49.99, {"size": ("Kids 10", "Kids 11", "Kids 12", "Kids 13", "Youth 1", "Youth 2"),
          "material": ("Synthetic", "Mesh")}),
         ("Slide Sandals", 19.99, 59.99, {"material": ("Synthetic", "Leather")})),
        ("Nike", "Adidas", "New Balance", "Converse", "Skechers", "Under Armour", "Timberland", "Stride Co."),
        ("{item}, {color}, {size}", "{adj} {item} - {color}, {width} Width"),
        ("{item} with a cushioned footbed for all-day comfort.", "{material} {item_lc} in {color_lc}."),
        ("Non-marking rubber outsole.", "Lightweight and flexible.", "Removable insole."),
        pick(size=("US 5", "US 6", "US 7", "US 8", "US 8.5", "US 9", "US 9.5", "US 10", "US 11", "US 12"),
             material=("Mesh",), width=("Regular", "Wide")),
        APPAREL,
    ),
    Kind(
        "Clothing", "Activewear & Outerwear", 12,
        (("Performance Training Shirt", 19.99, 44.99, {"material": ("Polyester", "Recycled Polyester")}),
         ("Running Shorts", 14.99, 39.99, {"material": ("Polyester", "Nylon")}),
         ("Puffer Jacket", 49.99, 179.99, {"material": ("Nylon", "Recycled Polyester")}),
         ("Fleece Jacket", 29.99, 89.99, {"material": ("Fleece",)}),
         ("Rain Shell Jacket", 39.99, 129.99, {"material": ("Nylon",)}),
         ("Knit Beanie", 9.99, 24.99, {"size": ("One Size",), "material": ("Acrylic", "Wool Blend")})),
        ("Under Armour", "Nike", "Columbia", "The North Face", "Patagonia", "Champion", "Fruit of the Loom", "Summit Trail"),
        ("{adj} {item}, {color}, {size}", "{item} - {color}, {size}"),
        ("{material} {item_lc} built for workouts and cold mornings.", "{adj} {item_lc} in {color_lc}."),
        ("Zippered pockets.", "Packable design.", "Quick-dry fabric."),
        pick(size=("XS", "S", "M", "L", "XL", "XXL"), material=("Polyester",), care=("Machine Wash", "Hand Wash")),
        APPAREL,
    ),
    # Sports & Outdoors ----------------------------------------------------------------------------------------
    Kind(
        "Sports & Outdoors", "Exercise & Fitness", 14,
        (("Yoga Mat", 14.99, 79.99, {"weight": lbs(2, 6), "material": ("TPE", "Natural Rubber", "PVC")}),
         ("Adjustable Dumbbells", 49.99, 349.99, {"weight": ("25 lbs", "52.5 lbs", "90 lbs"), "material": ("Steel",)}),
         ("Resistance Bands Set", 9.99, 34.99, {"weight": lbs(0.5, 2), "material": ("Latex", "Fabric")}),
         ("Jump Rope", 7.99, 24.99, {"weight": lbs(0.3, 1), "material": ("PVC", "Steel Cable")}),
         ("Foam Roller", 12.99, 39.99, {"weight": lbs(1, 3), "material": ("EVA Foam",)}),
         ("Kettlebell", 19.99, 89.99, {"weight": ("10 lbs", "15 lbs", "20 lbs", "25 lbs", "35 lbs"), "material": ("Cast Iron",)})),
        ("Gaiam", "Bowflex", "Manduka", "Fit Simplify", "CAP Barbell", "TheraBand", "Peak Form"),
        ("{adj} {item}, {color}", "{item} - {weight}, {color}"),
        ("{adj} {item_lc} for home workouts and the gym.",),
        ("Non-slip grip.", "Built to last through daily training.", "Compact for small spaces."),
        pick(weight=("1 lbs",), material=("Rubber",)),
        OUTDOOR,
    ),
    Kind(
        "Sports & Outdoors", "Outdoor Recreation", 14,
        (("Camping Tent", 59.99, 349.99, {"capacity": ("2 Person", "4 Person", "6 Person")}),
         ("Sleeping Bag", 29.99, 149.99, {"capacity": ("20 F Rated", "30 F Rated", "40 F Rated")}),
         ("Hiking Backpack", 49.99, 199.99, {"capacity": ("45 L", "55 L", "65 L")}),
         ("Insulated Water Bottle", 14.99, 44.99, {"capacity": ("24 oz", "32 oz", "40 oz"), "weight": lbs(0.6, 1.2)}),
         ("LED Camping Lantern", 14.99, 49.99, {"capacity": ("500 Lumens", "1000 Lumens")}),
         ("Folding Camp Chair", 19.99, 79.99, {"capacity": ("250 lb Capacity", "300 lb Capacity")})),
        ("Coleman", "Yeti", "REI Co-op", "Osprey", "Hydro Flask", "CamelBak", "Kelty", "Summit Trail"),
        ("{adj} {item}, {capacity}, {color}", "{item} - {capacity}, {color}"),
        ("{adj} {item_lc} for camping, hiking and backyard adventures.", "A {capacity_lc} {item_lc} in {color_lc}."),
        ("Weather resistant.", "Packs down small.", "Built for years of trips."),
        pick(capacity=("2 Person",), weight=lbs(1, 12)),
        OUTDOOR,
    ),
    Kind(
        "Sports & Outdoors", "Cycling", 6,
        (("Bike Helmet", 29.99, 99.99), ("Bike Light Set", 14.99, 49.99, {"size": ("Front & Rear",)}),
         ("Bike Lock", 19.99, 69.99, {"size": ("4 ft Cable", "U-Lock")}),
         ("Kids Balance Bike", 59.99, 149.99, {"size": ("12 inch", "14 inch")})),
        ("Schwinn", "Trek", "Giro", "Kryptonite", "Bell", "Strider"),
        ("{adj} {item}, {size}, {color}", "{item} - {color}"),
        ("{item} for safer rides around town.",),
        ("Built to safety standards.", "Easy to mount and adjust."),
        pick(size=("Kids", "Youth", "Adult S/M", "Adult L/XL")),
        OUTDOOR,
    ),
    Kind(
        "Sports & Outdoors", "Team Sports", 8,
        (("Soccer Ball", 14.99, 39.99, {"size": ("Size 3", "Size 4", "Size 5")}),
         ("Basketball", 19.99, 59.99, {"size": ("27.5 inch", "28.5 inch", "29.5 inch")}),
         ("Baseball Glove", 29.99, 99.99, {"size": ("10.5 inch", "11.5 inch", "12 inch")}),
         ("Volleyball", 14.99, 39.99, {"size": ("Official",)}),
         ("Football", 14.99, 44.99, {"size": ("Junior", "Youth", "Official")})),
        ("Wilson", "Spalding", "Adidas", "Nike", "Rawlings", "Louisville Slugger", "Under Armour"),
        ("{adj} {item}, {size}, {color}", "{item} - {size}, {color}"),
        ("{adj} {item_lc} for practice and game day.",),
        ("Durable composite cover.", "Indoor and outdoor play."),
        pick(size=("Official",)),
        OUTDOOR,
    ),
    Kind(
        "Sports & Outdoors", "Water & Winter Sports", 8,
        (("Swim Goggles", 9.99, 29.99), ("Life Jacket", 29.99, 89.99), ("Ski Goggles", 29.99, 149.99),
         ("Insulated Snow Gloves", 19.99, 59.99), ("Kids Snow Sled", 19.99, 49.99, {"size": ("Kids",)})),
        ("Speedo", "O'Neill", "Smith", "Burton", "Oakley", "Flexible Flyer"),
        ("{adj} {item}, {color}", "{item} - {size}, {color}"),
        ("{item} for days at the lake or on the slopes.",),
        ("Adjustable fit.", "Built for cold and wet conditions."),
        pick(size=("Kids", "Youth", "Adult", "S/M", "L/XL")),
        OUTDOOR,
    ),
    # Toys & Games ---------------------------------------------------------------------------------------------
    Kind(
        "Toys & Games", "Building & Educational Toys", 18,
        (("Building Bricks Set", 19.99, 129.99), ("STEM Robot Kit", 29.99, 99.99, {"pieces": num(20, 300)}),
         ("Magnetic Tiles", 24.99, 89.99, {"pieces": num(30, 120)}),
         ("Wooden Alphabet Blocks", 14.99, 34.99, {"pieces": ("26", "28", "52")}),
         ("Kids Microscope Kit", 29.99, 69.99, {"pieces": num(20, 60)})),
        ("LEGO", "LeapFrog", "Melissa & Doug", "Magna-Tiles", "Learning Resources", "Playmobil", "BrightStart"),
        ("{adj} {item}, {pieces} Pieces", "{item} for Ages {age_range} - {color}"),
        ("{item} to build creativity and problem solving, for ages {age_range}.",),
        ("Encourages STEM learning.", "Comes with an idea booklet.", "Great birthday gift."),
        pick(age_range=("3+", "4+", "6+", "8+", "10+"), pieces=num(100, 900)),
        KIDS,
    ),
    Kind(
        "Toys & Games", "Games & Puzzles", 14,
        (("Family Board Game", 14.99, 44.99), ("1000-Piece Jigsaw Puzzle", 12.99, 29.99, {"players": ("1+ players",)}),
         ("Card Game", 7.99, 19.99), ("Strategy Game", 24.99, 59.99),
         ("Kids Floor Puzzle", 9.99, 24.99, {"players": ("1+ players",), "age_range": ("3+", "4+")})),
        ("Hasbro", "Ravensburger", "Mattel", "Buffalo Games", "Exploding Kittens", "Catan Studio", "Gameday"),
        ("{adj} {item} - {theme}", "{theme} {item}"),
        ("{theme}-themed {item_lc} for {players}.",),
        ("Perfect for family game night.", "Easy to learn, hard to master."),
        pick(age_range=("5+", "8+", "10+", "12+", "14+"), players=("2-4 players", "2-6 players", "3-8 players"),
             theme=("Ocean", "Space", "Fantasy", "Wildlife", "Cityscape", "Trivia", "Farm")),
        KIDS,
    ),
    Kind(
        "Toys & Games", "Dolls & Action Figures", 12,
        (("Action Figure", 9.99, 34.99), ("Fashion Doll", 9.99, 29.99), ("Plush Teddy Bear", 9.99, 39.99),
         ("Dollhouse", 49.99, 179.99, {"size": ("24 inch", "36 inch")}), ("Superhero Figure Set", 19.99, 49.99),
         ("Stuffed Animal Unicorn", 9.99, 29.99)),
        ("Mattel", "Hasbro", "Barbie", "Marvel", "Jellycat", "Ty", "Melissa & Doug"),
        ("{adj} {item}, {size}, {color}", "{item} - {color}"),
        ("{size} {item_lc} for imaginative play.",),
        ("Ages 3 and up.", "Collect them all.", "Made with child-safe materials."),
        pick(size=("6 inch", "12 inch", "18 inch"), age_range=("3+", "4+", "6+")),
        KIDS,
    ),
    Kind(
        "Toys & Games", "Outdoor Play", 8,
        (("Remote Control Car", 24.99, 89.99), ("Kids Scooter", 29.99, 99.99), ("Bubble Machine", 14.99, 34.99),
         ("Water Blaster (2 Pack)", 9.99, 24.99), ("Sandbox Toy Set", 9.99, 24.99)),
        ("Razor", "Little Tikes", "Nerf", "Step2", "Hot Wheels", "Sunny Days"),
        ("{adj} {item}, {color}", "{item} for Kids - {color}"),
        ("{item} for backyard fun and outdoor play.",),
        ("Sturdy design for rough play.", "Easy to clean and store."),
        pick(age_range=("3+", "5+", "8+"), weight=lbs(0.5, 9)),
        KIDS,
    ),
    # Automotive -----------------------------------------------------------------------------------------------
    Kind(
        "Automotive", "Oils & Fluids", 6,
        (("Full Synthetic Motor Oil", 24.99, 44.99),
         ("Windshield Washer Fluid", 3.99, 8.99, {"grade": ("All-Season", "De-Icer"), "size": ("1 gal",)}),
         ("Antifreeze Coolant", 12.99, 24.99, {"grade": ("50/50 Prediluted", "Concentrate"), "size": ("1 gal",)})),
        ("Mobil", "Castrol", "Valvoline", "Pennzoil", "Prestone", "Rain-X"),
        ("{item} {grade}, {size}", "{adj} {item} - {grade}, {size}"),
        ("{item} to protect your vehicle in all seasons.",),
        ("Meets OEM specifications.", "Compatible with all makes and models."),
        pick(grade=("0W-20", "5W-20", "5W-30", "10W-30"), size=("1 qt", "5 qt")),
        ("Gold", "Blue", "Black", "Yellow", "Green", "Red"),
    ),
    Kind(
        "Automotive", "Car Care & Interior", 12,
        (("Car Wash Soap", 6.99, 19.99), ("Microfiber Towels (12 Pack)", 9.99, 24.99),
         ("All-Weather Floor Mats", 29.99, 119.99), ("Seat Covers", 29.99, 89.99), ("Car Phone Mount", 9.99, 34.99),
         ("Tire Shine Spray", 5.99, 14.99)),
        ("Armor All", "Meguiar's", "Chemical Guys", "WeatherTech", "Turtle Wax", "Road Ready"),
        ("{adj} {item}, {color}", "{item} - {fit}"),
        ("{item} for keeping your car showroom fresh.",),
        ("Fits cars, trucks and SUVs.", "Easy to use."),
        pick(fit=("Universal Fit", "Cars & SUVs", "Trucks & SUVs")),
        ("Black", "Gray", "Beige", "Blue", "Red", "Yellow"),
    ),
    Kind(
        "Automotive", "Tools & Electronics", 10,
        (("Portable Tire Inflator", 29.99, 79.99, {"feature": ("Digital Display", "Auto Shut-Off", "LED Flashlight")}),
         ("Jump Starter", 59.99, 149.99, {"feature": ("LED Flashlight", "USB Power Bank", "Safety Clamps")}),
         ("Dash Cam", 39.99, 199.99, {"feature": ("1080p Recording", "4K Recording", "Night Vision", "Parking Mode")}),
         ("OBD2 Scanner", 19.99, 89.99, {"feature": ("Bluetooth App", "Color Display")}),
         ("Digital Tire Pressure Gauge", 7.99, 19.99, {"feature": ("Backlit Display", "Auto Shut-Off")})),
        ("Bosch", "NOCO", "Garmin", "Vantrue", "AstroAI", "Black+Decker", "Road Ready"),
        ("{adj} {item}, {color}", "{item} with {feature}"),
        ("{item} with {feature_lc} for roadside peace of mind.",),
        ("Compact enough for the glove box.", "Easy to use right out of the box."),
        pick(feature=("Digital Display",)),
        ("Black", "Yellow", "Red", "Orange", "Gray"),
    ),
    # Baby -----------------------------------------------------------------------------------------------------
    Kind(
        "Baby", "Diapering", 8,
        (("Diapers", 19.99, 49.99), ("Overnight Diapers", 24.99, 49.99), ("Training Pants", 14.99, 39.99,
          {"size": ("2T-3T", "3T-4T", "4T-5T")})),
        ("Pampers", "Huggies", "Honest", "Hello Bello", "Little Sprout"),
        ("{item}, {size}, {count}", "{adj} {item} - {size}, {count}"),
        ("Soft, absorbent {item_lc} with up to 12 hours of leak protection.",),
        ("Hypoallergenic.", "Free of fragrance and parabens.", "Wetness indicator."),
        pick(size=("Newborn", "Size 1", "Size 2", "Size 3", "Size 4", "Size 5"), count=("56 count", "84 count", "120 count", "168 count")),
        ("White", "Blue", "Pink", "Green", "Yellow"),
    ),
    Kind(
        "Baby", "Baby Care & Gear", 12,
        (("Baby Wipes (6 Pack)", 9.99, 24.99), ("Diaper Rash Cream", 4.99, 12.99), ("Changing Pad", 19.99, 39.99),
         ("Anti-Colic Baby Bottles (3 Pack)", 14.99, 34.99), ("Silicone Sippy Cup", 7.99, 14.99),
         ("Video Baby Monitor", 49.99, 199.99), ("Lightweight Stroller", 99.99, 299.99),
         ("Swaddle Blankets (3 Pack)", 19.99, 39.99), ("High Chair", 59.99, 179.99, {"age_range": ("6-36 months",)})),
        ("Graco", "Philips Avent", "Dr. Brown's", "Munchkin", "Chicco", "Nanit", "Aden + Anais", "WaterWipes", "Little Sprout"),
        ("{adj} {item}, {color}", "{item} - {age_range}, {color}"),
        ("{item} designed for babies {age_range}.",),
        ("BPA free.", "Easy to clean.", "Pediatrician recommended brand."),
        pick(age_range=("0-6 months", "6-12 months", "0-36 months", "12+ months")),
        ("White", "Gray", "Pink", "Sky Blue", "Mint Green", "Yellow", "Beige"),
    ),
    # Tools & Home Improvement ---------------------------------------------------------------------------------
    Kind(
        "Tools & Home Improvement", "Tools", 12,
        (("Cordless Drill", 49.99, 179.99, {"power_source": ("12V Cordless", "18V Cordless", "20V Max Cordless")}),
         ("Screwdriver Set", 14.99, 49.99), ("Tape Measure", 7.99, 24.99), ("Claw Hammer", 12.99, 34.99),
         ("Circular Saw", 69.99, 199.99, {"power_source": ("Corded", "20V Max Cordless")}), ("Tool Box", 19.99, 79.99)),
        ("DeWalt", "Milwaukee", "Makita", "Craftsman", "Stanley", "Black+Decker", "Ryobi", "Irwin", "Ironclad"),
        ("{adj} {item}, {color}", "{item} - {color}"),
        ("{adj} {item_lc} for DIY projects and job sites.",),
        ("Ergonomic grip.", "Built to last.", "Lifetime warranty."),
        pick(power_source=("Manual",), weight=lbs(0.5, 9)),
        ("Yellow", "Red", "Black", "Orange", "Blue", "Green"),
    ),
    Kind(
        "Tools & Home Improvement", "Lighting & Electrical", 8,
        (("LED Light Bulbs (4 Pack)", 7.99, 24.99, {"spec": ("60W Equivalent", "100W Equivalent")}),
         ("Surge Protector Power Strip", 12.99, 39.99, {"spec": ("6 Outlets", "12 Outlets")}),
         ("Extension Cord", 9.99, 29.99, {"spec": ("10 ft", "25 ft", "50 ft")}),
         ("Motion Sensor Night Light", 9.99, 24.99, {"spec": ("Plug-In", "Battery Powered")}),
         ("Smart Plug (2 Pack)", 14.99, 29.99, {"spec": ("Wi-Fi", "Matter")})),
        ("Philips", "GE", "Cree", "Belkin", "Amazon Basics", "Kasa", "BrightHome"),
        ("{item}, {spec}, {color}", "{adj} {item} - {spec}"),
        ("{spec} {item_lc} for safe, efficient power and light.",),
        ("UL listed.", "Energy saving."),
        pick(spec=("Standard",)),
        ("White", "Black", "Gray", "Orange"),
    ),
    # Patio, Lawn & Garden -------------------------------------------------------------------------------------
    Kind(
        "Patio, Lawn & Garden", "Gardening", 12,
        (("Expandable Garden Hose", 19.99, 59.99, {"size": ("25 ft", "50 ft", "100 ft")}),
         ("Ceramic Planter", 14.99, 59.99, {"size": ("6 inch", "10 inch", "12 inch")}),
         ("Pruning Shears", 12.99, 39.99, {"size": ("8 inch",)}), ("Bird Feeder", 14.99, 49.99, {"size": ("2 lb Capacity",)}),
         ("Solar Path Lights (8 Pack)", 19.99, 49.99, {"size": ("15 inch",)}),
         ("Outdoor String Lights", 19.99, 59.99, {"size": ("24 ft", "48 ft")}),
         ("Raised Garden Bed", 49.99, 149.99, {"size": ("4 x 2 ft", "6 x 3 ft")})),
        ("Scotts", "Miracle-Gro", "Fiskars", "Flexzilla", "Bloem", "Brightown", "Greenleaf"),
        ("{adj} {item}, {size}, {color}", "{item} - {color}"),
        ("{item} for patios, balconies and backyard gardens.",),
        ("Weather resistant.", "UV protected.", "Easy to assemble."),
        pick(size=("Standard",)),
        ("Green", "Terracotta", "White", "Black", "Gray", "Blue", "Brown"),
    ),
    # Health & Household ---------------------------------------------------------------------------------------
    Kind(
        "Health & Household", "Household Supplies", 12,
        (("Paper Towels", 7.99, 19.99, {"spec": ("Select-a-Size", "Extra Strong"), "count": ("6 rolls", "12 rolls")}),
         ("Toilet Paper", 8.99, 24.99, {"spec": ("Ultra Soft", "Ultra Strong"), "count": ("12 rolls", "24 rolls")}),
         ("Trash Bags", 7.99, 21.99, {"spec": ("13 Gallon", "30 Gallon", "Drawstring")}),
         ("Facial Tissues", 5.99, 12.99, {"spec": ("Ultra Soft", "With Lotion"), "count": ("4 boxes", "8 boxes")}),
         ("Zipper Storage Bags", 3.99, 9.99, {"spec": ("Quart", "Gallon", "Sandwich")})),
        ("Bounty", "Charmin", "Glad", "Hefty", "Kleenex", "Ziploc", "Cottonelle", "Home Basics"),
        ("{adj} {item}, {spec}, {count}", "{item} - {spec}, {count}"),
        ("{spec} {item_lc} for everyday household needs.",),
        ("Value pack.", "Made with recycled materials.", "Strong and dependable."),
        pick(spec=("Standard",), count=("40 count", "90 count")),
        ("White", "Blue", "Green", "Yellow", "Black"),
    ),
    Kind(
        "Health & Household", "Health Care", 10,
        (("Daily Multivitamin", 9.99, 29.99), ("Vitamin D3 Gummies", 9.99, 24.99),
         ("First Aid Kit", 14.99, 49.99, {"count": ("100 pieces", "200 pieces", "300 pieces")}),
         ("Digital Thermometer", 9.99, 29.99, {"count": ("1 unit",)}),
         ("Blood Pressure Monitor", 29.99, 79.99, {"count": ("1 unit",)}),
         ("Reusable Ice Pack", 7.99, 19.99, {"count": ("1 unit", "2 units")})),
        ("Nature Made", "Centrum", "Band-Aid", "Omron", "Vicks", "Olly", "CareFirst"),
        ("{adj} {item}, {count}", "{item} - {count}"),
        ("{item} to keep the whole family healthy.",),
        ("Doctor recommended brand.", "Trusted by families for years."),
        pick(count=("60 count", "90 count", "120 count")),
        ("White", "Red", "Blue", "Orange", "Green", "Purple"),
    ),
)
# fmt: on


_PROPER_WORDS = ("Wi-Fi", "Bluetooth", "Qi", "Egyptian", "Turkish")
# "a" before a vowel sound; "u" is a vowel sound except in unicorn, USB, use...
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeioAEIO]|u(?!ni|se|sb)|8|11\b|18\b)")


def _lower_part(part: str) -> str:
    keep = len(part) == 1 or sum(c.isupper() for c in part) > 1 or any(c.isdigit() for c in part)
    return part if keep else part.lower()


@functools.cache
def _lower_initial(text: str) -> str:
    """Lower-case words for use mid-sentence, keeping acronyms and model codes (4K, USB-C, IPS) as they are."""
    return " ".join(
        word if word in _PROPER_WORDS else "-".join(_lower_part(part) for part in word.split("-"))
        for word in text.split()
    )


def _fix_articles(text: str) -> str:
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", text)


class _Context(dict[str, str]):
    """The fields name and description templates may use; `<field>_lc` is its mid-sentence form, made on demand."""

    def __missing__(self, key: str) -> str:
        if key.endswith("_lc") and key[:-3] in self:
            return _lower_initial(self[key[:-3]])
        raise KeyError(key)


def _context(kind: Kind, rng: Random, attrs: dict[str, str], item: str, color: str, brand: str) -> _Context:
    return _Context(
        {"adj": _choice(rng, kind.adjective_pool()), "item": item, "color": color, "brand": brand, **attrs}
    )


def _retail_price(rng: Random, value: float) -> float:
    """A shelf price near `value`: mostly .99 endings, some .49/.95, a few plain cents."""
    value = max(value, 0.99)
    dollars = int(value)
    if dollars >= 100:
        dollars = dollars - dollars % 10 + 9
    r = rng.random()
    if r < 0.6:
        cents = 99
    elif r < 0.75:
        cents = 49
    elif r < 0.85:
        cents = 95
    else:
        cents = _below(rng, 100)
    return round(dollars + cents / 100, 2)


def _rating(rng: Random) -> float:
    if rng.random() < 0.03:
        return _randint(rng, 10, 29) / 10
    # Sum of two uniforms: a triangle peaked near 4.2, in 3.0-5.0.
    return min(50, 30 + _randint(rng, 0, 10) + _randint(rng, 0, 12)) / 10


def _stock_status(rng: Random) -> str:
    # The shapes of the real catalog: "Low Stock (Only N left)" and "Back Order" included.
    r = rng.random()
    if r < 0.7:
        return "In Stock"
    if r < 0.82:
        return f"Low Stock (Only {_randint(rng, 1, 10)} left)"
    if r < 0.91:
        return "Out of Stock"
    return "Back Order"


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def generate_products(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Iterator[dict[str, Any]]:
    """Yield `count` products PROD-000001... in the real sample's schema, reproducibly from `seed`.

    Every draw comes from one seeded Random in a fixed order, from tuples (never sets), with exact float
    arithmetic only (no log/exp, whose last bit may vary by platform) and no clock. Product N depends only on
    products 1..N, so a smaller catalog is a prefix of a larger one with the same seed.
    """
    rng = Random(seed)
    cum_weights: list[int] = []
    total = 0
    for kind in KINDS:
        total += kind.weight
        cum_weights.append(total)
    # The catalog's clock: a fixed start derived from the seed, never the machine's clock.
    start = datetime(2024, 1, 1) + timedelta(seconds=_below(rng, 180 * 86400))
    seen_names: set[str] = set()
    for number in range(1, count + 1):
        kind = KINDS[bisect.bisect(cum_weights, rng.random() * total)]
        item, low, high, *overrides = _choice(rng, kind.items)
        brand = _choice(rng, kind.brands)
        attrs = kind.attrs(rng)
        for key, option in (overrides[0] if overrides else {}).items():
            attrs[key] = _choice(rng, option) if isinstance(option, tuple) else option(rng)
        color = attrs.get("color") or (_choice(rng, kind.colors) if kind.colors else "")
        ctx = _context(kind, rng, attrs, item, color, brand)

        name = _choice(rng, kind.names).format_map(ctx)
        if name in seen_names:
            # Keep every name distinguishable, like the model codes of real catalogs ("TV Z9618").
            name = f"{name}, Model {_choice(rng, 'ABCDEFGHJKLMNPRSTVXZ')}{_randint(rng, 1000, 9999)}"
        seen_names.add(name)

        lead_template = _choice(rng, kind.leads)
        lead = lead_template.format_map(ctx)
        if "a {" in lead_template or "A {" in lead_template:
            lead = _fix_articles(lead)
        # Extras are plain sentences; only the lead has fields (and so a lower-case start, or "a" + vowel).
        extras = _sample(rng, kind.extras, _choice(rng, (0, 1, 1, 2)))
        description = " ".join((lead[0].upper() + lead[1:], *extras))

        hidden_price = attrs.get("_price")
        raw_price = float(hidden_price) if hidden_price else rng.uniform(low, high)
        attributes = {"color": color} if color and "color" not in attrs else {}
        attributes.update((k, v) for k, v in attrs.items() if not k.startswith("_"))

        created = start + timedelta(
            days=_below(rng, 400), seconds=_below(rng, 86400), microseconds=_below(rng, 1_000_000)
        )
        updated = created + (
            timedelta(microseconds=_randint(rng, 1, 9))
            if rng.random() < 0.5
            else timedelta(
                days=_randint(rng, 1, 119),
                seconds=_below(rng, 86400),
                microseconds=_below(rng, 1_000_000),
            )
        )
        review_count = int(rng.random() * rng.random() * 2500)
        yield {
            "id": f"PROD-{number:06d}",
            "name": name,
            "description": description,
            "category": kind.category,
            "subcategory": kind.subcategory,
            "price": _retail_price(rng, raw_price),
            "brand": brand,
            "rating": _rating(rng),
            "review_count": review_count,
            "stock_status": _stock_status(rng),
            "attributes": attributes,
            "image": {"url": "", "alt_text": f"Image of {name}"},
            "created_at": _timestamp(created),
            "updated_at": _timestamp(updated),
        }


# --- writers ---------------------------------------------------------------------------------------------


def _flat_row(product: dict[str, Any]) -> dict[str, Any]:
    """A product with `attributes` and `image` as JSON strings, for the tabular formats."""
    row = dict(product)
    row["attributes"] = json.dumps(product["attributes"], ensure_ascii=False)
    row["image"] = json.dumps(product["image"], ensure_ascii=False)
    return row


def dumps_indented(product: dict[str, Any]) -> str:
    """Exactly `json.dumps(product, indent=2, ensure_ascii=False)`, three times faster for the catalog's shape
    (flat scalars plus dicts of strings); any other shape goes to json.dumps itself."""
    parts = []
    for key, value in product.items():
        kind = type(value)
        if kind is str:
            parts.append(f"{_quote(key)}: {_quote(value)}")
        elif kind is int or (kind is float and math.isfinite(value)):
            parts.append(f"{_quote(key)}: {value!r}")
        elif kind is dict and all(type(k) is str and type(v) is str for k, v in value.items()):
            inner = ",\n    ".join(f"{_quote(k)}: {_quote(v)}" for k, v in value.items())
            parts.append(f"{_quote(key)}: {{\n    {inner}\n  }}" if value else f"{_quote(key)}: {{}}")
        else:
            return json.dumps(product, indent=2, ensure_ascii=False)
    return "{\n  " + ",\n  ".join(parts) + "\n}" if parts else "{}"


def write_json(products: Iterable[dict[str, Any]], path: Path) -> None:
    """Write exactly `json.dumps(list(products), indent=2, ensure_ascii=False) + "\\n"`, one product at a time."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        separator = "[\n  "
        for product in products:
            out.write(separator)
            out.write(dumps_indented(product).replace("\n", "\n  "))
            separator = ",\n  "
        out.write("[]\n" if separator == "[\n  " else "\n]\n")


def write_jsonl(products: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for product in products:
            out.write(json.dumps(product, ensure_ascii=False))
            out.write("\n")


def write_csv(products: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for product in products:
            writer.writerow(_flat_row(product))


def write_parquet(products: Iterable[dict[str, Any]], path: Path, chunk_size: int = 10_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [(field, pa.float64() if field in ("price", "rating") else pa.int64() if field == "review_count" else pa.string())
         for field in FIELDS]
    )  # fmt: skip
    with pq.ParquetWriter(path, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for product in products:
            chunk.append(_flat_row(product))
            if len(chunk) >= chunk_size:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


WRITERS: dict[str, Callable[[Iterable[dict[str, Any]], Path], None]] = {
    "json": write_json,
    "jsonl": write_jsonl,
    "csv": write_csv,
    "parquet": write_parquet,
}


def write_catalog(
    path: Path, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED, fmt: str = "json"
) -> Path:
    """Generate and write a catalog; the file appears complete or not at all (written aside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    try:
        WRITERS[fmt](generate_products(count, seed), partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="number of products (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument(
        "--out", type=Path, help=f"output file (default {DEFAULT_OUT.relative_to(PROJECT_ROOT)})"
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default: from --out's suffix, else json)"
    )
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    fmt = args.format or (
        args.out.suffix.lstrip(".") if args.out and args.out.suffix.lstrip(".") in FORMATS else "json"
    )
    out = args.out or DEFAULT_OUT.with_suffix(f".{fmt}")
    write_catalog(out, args.count, args.seed, fmt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
