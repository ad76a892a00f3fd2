"""Small catalogs made in the test itself, so tests need no file outside the repo."""

from __future__ import annotations

CATEGORIES = ("Electronics", "Home & Kitchen", "Sports")


def make_products(count: int, *, start: int = 1, categories: tuple[str, ...] = CATEGORIES) -> list[dict]:
    """`count` valid products PROD-<start>… with categories taken in turn from `categories`."""
    return [
        {
            "id": f"PROD-{n:06d}",
            "name": f"Test product {n}",
            "description": f"A plain test product number {n}.",
            "category": categories[n % len(categories)],
            "subcategory": "Test",
            "brand": "Acme",
            "price": 10.0 + n,
            "attributes": {"color": "blue"},
        }
        for n in range(start, start + count)
    ]
