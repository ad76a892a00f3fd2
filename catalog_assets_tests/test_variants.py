"""Delivery variants: written once, made from the stored JPEG for a store that has only it (no generator
call), with their content types and cache headers on S3 and locally, listed in the manifest and the linked
catalog with the sha256 of the stored bytes; and the figures check that names the products that miss."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from dagster import AssetCheckSeverity
from pydantic import Field

from catalog_assets.checks import IMAGE_FIGURES
from catalog_assets.generation import BatchProcessor, GenerationSettings
from catalog_assets.report import contact_sheet
from catalog_assets.resources.image_api import GeneratedImage, ImageGeneratorResource
from catalog_assets.resources.local_coordination import LocalCoordinationResource
from catalog_assets.resources.offline import OfflineCardGenerator
from catalog_assets.resources.s3_store import S3ImageStoreResource
from catalog_assets.resources.store import CACHE_CONTROL_IMAGES, LocalImageStore
from catalog_assets.variants import VariantSpec, variant_key
from catalog_assets_tests.conftest import RENDERS, Pipeline, write_catalog
from catalog_assets_tests.products import make_products
from catalog_assets_tests.s3_fixtures import moto_client

SPEC = VariantSpec.of(["webp", "avif"], [160, 320])
TYPES = {"webp": "image/webp", "avif": "image/avif"}
BOTH = {"variant_formats": ["webp", "avif"], "variant_widths": [320, 640]}


class CountingStore(LocalImageStore):
    """The local store, counting the writes that reach its files."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.written: Counter[str] = Counter()

    def put(self, key, data, **kwargs):
        result = super().put(key, data, **kwargs)
        if result.uploaded:
            self.written[key.split("/")[0]] += 1
        return result


def processor(store, tmp_path, generator=None, spec: VariantSpec = SPEC) -> BatchProcessor:
    return BatchProcessor(
        generator=generator or OfflineCardGenerator(size=400),
        fallback=OfflineCardGenerator(size=400),
        store=store,
        coordinator=LocalCoordinationResource(lock_dir=str(tmp_path / "locks")).get_client(),
        run_id="test-run",
        settings=GenerationSettings(variants=spec),
    )


def test_variants_are_written_once_and_a_rerun_writes_none(tmp_path) -> None:
    store = CountingStore(tmp_path / "store")
    products = make_products(3)
    first = processor(store, tmp_path).process(products)
    assert store.written == {"images": 3, "thumbnails": 3, "variants": 12}
    for r in first:
        assert [(v["format"], v["width"]) for v in r.variants] == [
            ("webp", 160),
            ("avif", 160),
            ("webp", 320),
            ("avif", 320),
        ]
    store.written.clear()
    again = processor(store, tmp_path).process(products)
    assert store.written == {}
    assert [r.outcome for r in again] == ["skipped"] * 3
    assert [r.variants for r in again] == [r.variants for r in first]
    assert [r.figures for r in again] == [r.figures for r in first]


def test_local_variants_carry_their_content_type_and_the_bytes_decode_as_that_format(tmp_path) -> None:
    from PIL import Image

    store = LocalImageStore(tmp_path / "store")
    (result,) = processor(store, tmp_path).process(make_products(1))
    for v in result.variants:
        head = store.head(v["key"])
        assert head.content_type == TYPES[v["format"]] == v["content_type"]
        assert head.sha256 == v["sha256"] == hashlib.sha256(store.get(v["key"])).hexdigest()
        with Image.open(store.root / v["key"]) as im:
            assert im.format == v["format"].upper() and im.size == (v["width"], v["height"])


def test_a_store_with_only_the_jpeg_gets_its_variants_from_the_stored_bytes_without_a_render(
    pipeline: Pipeline,
) -> None:
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(4))).success
    (partition,) = pipeline.partitions()
    assert pipeline.images(partition, {"variant_formats": []}).success
    assert sum(RENDERS.values()) == 4
    assert not list(pipeline.store.list("variants/"))
    RENDERS.clear()
    assert pipeline.images(partition, BOTH).success
    assert sum(RENDERS.values()) == 0  # nothing generated: made from the stored JPEG
    keys = sorted(o.key for o in pipeline.store.list("variants/"))
    assert keys == sorted(
        variant_key(p["id"], w, f) for p in make_products(4) for w in (320, 640) for f in ("webp", "avif")
    )
    # deleted variants are made again, still without a render
    pipeline.store.delete(variant_key("PROD-000002", 640, "avif"))
    assert pipeline.images(partition, BOTH).success
    assert sum(RENDERS.values()) == 0
    assert pipeline.store.head(variant_key("PROD-000002", 640, "avif")) is not None

    assert pipeline.publish().success
    rows = {r["product_id"]: r for r in pipeline.store.get_json("manifests/latest.json")["rows"]}
    linked = {p["id"]: p for p in pipeline.store.get_json("catalog/linked_catalog.json")}
    for pid, row in rows.items():
        assert len(row["variants"]) == 4
        for v in row["variants"]:
            assert v["sha256"] == hashlib.sha256(pipeline.store.get(v["key"])).hexdigest()
            assert v["bytes"] == len(pipeline.store.get(v["key"]))
            assert v["url"] == pipeline.store.url(v["key"])
        image = linked[pid]["image"]
        assert image["url"] == pipeline.store.url(f"images/{pid}.jpg")  # the JPEG stays the main URL
        assert image["variants"] == [
            {"url": pipeline.store.url(variant_key(pid, w, f)), "width": w, "type": TYPES[f]}
            for f in ("avif", "webp")
            for w in (320, 640)
        ]
        assert image["srcset"]["image/webp"] == (
            f"variants/{pid}-320.webp 320w, variants/{pid}-640.webp 640w"
        )
        assert row["border_white_share"] is not None and row["square"] is True


def test_the_default_is_webp_at_320_and_640_px(pipeline: Pipeline) -> None:
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(1))).success
    (partition,) = pipeline.partitions()
    assert pipeline.images(partition).success
    assert sorted(o.key for o in pipeline.store.list("variants/")) == [
        "variants/PROD-000001-320.webp",
        "variants/PROD-000001-640.webp",
    ]


def test_bad_variant_config_is_refused_before_anything_is_written(pipeline: Pipeline) -> None:
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(2))).success
    (partition,) = pipeline.partitions()
    result = pipeline.images(partition, {"variant_widths": [0]})
    assert not result.success
    message = next(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)
    assert "variant widths must be 16..4096 px" in message
    assert not list(pipeline.store.list("images/"))


def test_s3_variants_have_content_types_and_the_images_cache_header_and_a_rerun_puts_nothing(
    s3_bucket: str, s3_proxy, tmp_path
) -> None:
    store = S3ImageStoreResource(bucket=s3_bucket, prefix="shop").get_client()
    products = make_products(2)
    first = processor(store, tmp_path).process(products)
    assert all(r.outcome == "generated" for r in first)
    s3 = moto_client(s3_proxy.upstream.geturl())
    main = s3.head_object(Bucket=s3_bucket, Key="shop/images/PROD-000001.jpg")
    for r in first:
        for v in r.variants:
            head = s3.head_object(Bucket=s3_bucket, Key=f"shop/{v['key']}")
            assert head["ContentType"] == TYPES[v["format"]]
            assert head["CacheControl"] == main["CacheControl"] == CACHE_CONTROL_IMAGES
            body = s3.get_object(Bucket=s3_bucket, Key=f"shop/{v['key']}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == v["sha256"]
    s3_proxy.clear()
    again = processor(store, tmp_path).process(products)
    assert [r.outcome for r in again] == ["skipped", "skipped"]
    assert s3_proxy.count("PUT") == 0
    # only the JPEG left: the variants come back from its bytes, with the same content types
    for v in first[0].variants:
        store.delete(v["key"])
    s3_proxy.clear()
    rebuilt = processor(store, tmp_path).process(products[:1])
    assert s3_proxy.count("PUT") == 4
    assert [v["key"] for v in rebuilt[0].variants] == [v["key"] for v in first[0].variants]
    for v in rebuilt[0].variants:  # made from the decoded JPEG, so other bytes than the first ones
        head = s3.head_object(Bucket=s3_bucket, Key=f"shop/{v['key']}")
        assert (head["ContentType"], head["CacheControl"]) == (TYPES[v["format"]], CACHE_CONTROL_IMAGES)
        assert head["Metadata"]["sha256"] == v["sha256"]


class StudioGenerator(OfflineCardGenerator):
    """Product shots drawn for the test: on pure white filling 90% of the frame, or for `grey_ids` a small
    product on a grey background, or for `card_ids` the offline card (as a product the API refused gets)."""

    def __init__(self, grey_ids: set[str], card_ids: set[str] = frozenset()) -> None:
        super().__init__()
        self.grey_ids = grey_ids
        self.card_ids = card_ids

    def generate(self, *, product_id: str, prompt: str, attempt: int, product=None) -> GeneratedImage:
        from PIL import Image, ImageDraw

        if product_id in self.card_ids:
            return super().generate(product_id=product_id, prompt=prompt, attempt=attempt, product=product)
        grey = product_id in self.grey_ids
        img = Image.new("RGB", (1024, 1024), (200, 200, 200) if grey else (255, 255, 255))
        box = (400, 400, 600, 600) if grey else (51, 51, 972, 972)
        seed = int(product_id[-3:])
        ImageDraw.Draw(img).rectangle(box, fill=(30, 60 + seed * 40, 200))
        ImageDraw.Draw(img).ellipse(
            (box[0] + 20 * seed, box[1], box[2], box[3] - 30 * seed), fill=(240, 20, 20)
        )
        return GeneratedImage(data=b"", model="studio-test", image=img)


class StudioGeneratorResource(ImageGeneratorResource):
    grey_ids: list[str] = Field(default_factory=list)
    card_ids: list[str] = Field(default_factory=list)

    def get_client(self) -> StudioGenerator:
        return StudioGenerator(set(self.grey_ids), set(self.card_ids))


def test_the_figures_check_warns_naming_the_products_that_miss(pipeline: Pipeline) -> None:
    assert pipeline.catalog(write_catalog(pipeline.root / "c.json", make_products(4))).success
    (partition,) = pipeline.partitions()
    pipeline.generator = StudioGeneratorResource(grey_ids=["PROD-000002"], card_ids=["PROD-000004"])
    assert pipeline.images(partition, {"variant_formats": []}).success
    result = pipeline.publish()
    assert result.success  # a warning: the images still publish
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == IMAGE_FIGURES]
    assert not check.passed and check.severity is AssetCheckSeverity.WARN
    table = check.metadata["products"].value
    assert "PROD-000002" in table and not {"PROD-000001", "PROD-000003", "PROD-000004"} & set(table.split())
    assert "background not pure white (0% of border pixels are RGB 255)" in table
    assert "product fills 4% of the frame" in table
    assert check.metadata["measured"].value == 3
    assert check.metadata["white_background"].value == 2
    assert check.metadata["filled_frame"].value == 2
    assert "1 of 3 images miss" in check.description
    report = pipeline.store.get("reports/generation_report.md").decode()
    # The report counts as the check does: photos judged, the card named as a placeholder.
    assert "2 of 3 product photos (mean 66.7% white)" in report
    assert "images that miss at least one: 1 of 3" in report
    assert "offline cards (placeholders, figures recorded but not judged): 1" in report


@pytest.mark.parametrize("fallback", [True, False])
def test_contact_sheet_labels_fallback_cards_under_their_thumbnail(fallback: bool) -> None:
    import io

    import numpy as np
    from PIL import Image

    from catalog_assets.cards import render_product_card
    from catalog_assets.imaging import encode_jpeg

    thumbs = [(p["id"], encode_jpeg(render_product_card(p, 240))) for p in make_products(2)]
    labels = {"PROD-000001": "fallback card" if fallback else "", "PROD-000002": "offline card"}
    sheet = Image.open(io.BytesIO(contact_sheet(thumbs, columns=2, labels=labels))).convert("RGB")
    below = np.asarray(sheet)[258:284].astype(int)  # the line under each product id
    red = (below[..., 0] > 140) & (below[..., 1] < 80) & (below[..., 2] < 80)
    grey = (np.abs(below - 90) < 30).all(axis=-1)
    assert bool(red[:, :240].any()) is fallback  # "fallback card" in red under the first thumbnail
    assert not red[:, 240:].any() and grey[:, 240:].any()  # "offline card" in grey under the second


def test_a_move_to_another_store_imports_the_jpeg_and_makes_its_variants_there(tmp_path) -> None:
    seed = LocalImageStore(tmp_path / "seed")
    products = make_products(2)
    processor(seed, tmp_path, spec=VariantSpec((), ())).process(products)
    assert not list(seed.list("variants/"))
    target = CountingStore(tmp_path / "target")
    moved = BatchProcessor(
        generator=OfflineCardGenerator(size=400),
        fallback=OfflineCardGenerator(size=400),
        store=target,
        coordinator=LocalCoordinationResource(lock_dir=str(tmp_path / "locks")).get_client(),
        run_id="move",
        settings=GenerationSettings(variants=SPEC),
        seed_store=seed,
    ).process(products)
    assert [r.message.startswith("imported from") for r in moved] == [True, True]
    assert target.written == {"images": 2, "thumbnails": 2, "variants": 8}
    assert all(len(r.variants) == 4 and r.figures for r in moved)
