"""The linked catalog: every product's image URL is the URL of that product's own stored image."""

from urllib.parse import urlsplit, urlunsplit

from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from catalog_assets import state
from catalog_assets.checks.names import LINKED_CATALOG, LINKED_URLS_RESOLVE
from catalog_assets.checks.results import table
from catalog_assets.outcomes import image_key
from catalog_assets.resources.store import ImageStoreResource


def _without_query(url: str) -> str:
    """A URL without query and fragment: presigned URLs differ in their signature, not in what they name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@asset_check(
    asset=LINKED_CATALOG,
    name=LINKED_URLS_RESOLVE,
    description="Every image URL in the linked catalog is the URL of that product's own image "
    "(images/<product id>.jpg) and that object exists in the store. ERROR, not blocking: only the report is "
    "downstream, and it should still be written.",
)
def linked_urls_resolve(store: ImageStoreResource) -> AssetCheckResult:
    client = store.get_client()
    linked = client.get_json(state.LINKED_JSON_KEY, default=None)
    if linked is None:
        return AssetCheckResult(
            passed=False, description=f"no linked catalog in the store ({state.LINKED_JSON_KEY})"
        )
    objects = {_without_query(client.url(o.key)): o.key for o in client.list("images/")}
    problems, with_url = [], 0
    for product in linked:
        url = (product.get("image") or {}).get("url")
        if not url:
            continue
        with_url += 1
        pid = product.get("id")
        # the key comes from the product's own id, never from the row: a URL naming another product's image
        # resolves, but to the wrong picture
        own = image_key(str(pid))
        named = objects.get(_without_query(url))
        if _without_query(url) != _without_query(client.url(own)):
            where = f"names {named}" if named else "names no object in the store"
            problems.append([pid, url, f"{where} instead of {own}"])
        elif named is None:
            problems.append([pid, url, "no object in the store at this URL"])
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} of {with_url} image URLs do not resolve to the product's object"
        if problems
        else f"all {with_url} image URLs resolve to the products' own objects",
        metadata={
            "products": len(linked),
            "image_urls": with_url,
            "dangling_urls": len(problems),
            "dangling": table(["product", "url", "problem"], problems),
            "explanation": "each image.url (without query string, so presigned URLs compare by object) must be "
            "the store's URL of images/<product id>.jpg, and that object must be listed under images/",
        },
    )
