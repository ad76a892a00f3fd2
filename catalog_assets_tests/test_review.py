"""The review record, schema and offline description, the offline reviewer on real product cards, and the
OpenAI reviewer through the real `openai` SDK against the stand-in's `/v1/responses` over HTTP."""

from __future__ import annotations

import base64
import io
import json

import openai
import pytest
from PIL import Image, ImageDraw

from catalog_assets.cards import OFFLINE_MODEL, render_product_card
from catalog_assets.catalog import load_catalog
from catalog_assets.errors import ErrorClass, ImageAPIError, RunStopped
from catalog_assets.resources.image_reviewer import (
    DEFAULT_REVIEW_MODEL,
    OfflineImageReviewer,
    OfflineImageReviewerResource,
    OpenAIImageReviewer,
    OpenAIImageReviewerResource,
    image_data_url,
    is_offline_card,
)
from catalog_assets.review import (
    ALT_TEXT_MAX,
    COLOUR_NAMES,
    ISSUES,
    OFFLINE_REVIEWER,
    REVIEW_SCHEMA,
    ImageReview,
    ReviewFormatError,
    dominant_colours,
    is_template_alt_text,
    offline_description,
    parse_review,
    retake_prompt,
    retake_suffix,
)
from catalog_assets.standin import StandInServer
from catalog_assets.standin.review import strict_problem
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-standin-review-test-0123456789abcdef"
PRODUCT = {
    "id": "PROD-000001",
    "name": "Red Glass Bottle, 750 ml",
    "brand": "Acme",
    "category": "Home & Kitchen",
    "subcategory": "Drinkware",
    "attributes": {"color": "Red", "material": "Glass", "size": "750 ml"},
}
VALID = {
    "shows_product": True,
    "issues": [],
    "visible_text": "ACME",
    "alt_text": "Red glass bottle with a cork on a white background",
    "caption": "A red glass bottle of 750 ml on a white background.",
    "dominant_colours": ["Red", "white"],
}


def red_bottle() -> Image.Image:
    image = Image.new("RGB", (512, 512), (250, 250, 250))
    ImageDraw.Draw(image).rectangle((180, 80, 330, 460), fill=(205, 25, 35))
    return image


@pytest.fixture(scope="module")
def bundled() -> list[dict]:
    return load_catalog("data/catalog.json").products


# -- the record and the schema ---------------------------------------------------------------------------


def test_schema_is_strict_and_names_every_issue() -> None:
    assert strict_problem(REVIEW_SCHEMA, ()) is None  # what strict structured outputs demand
    assert REVIEW_SCHEMA["required"] == list(REVIEW_SCHEMA["properties"])
    assert REVIEW_SCHEMA["properties"]["issues"]["items"]["enum"] == list(ISSUES)
    assert set(ISSUES) == {"wrong_object", "garbled_text", "person", "multiple_products", "watermark",
                           "off_white_background", "other"}  # fmt: skip


def test_parse_review_reads_a_valid_answer_and_round_trips() -> None:
    review = parse_review(json.dumps(VALID), reviewer="gpt-5.4-mini")
    assert review.approved and review.reviewer == "gpt-5.4-mini" and not review.offline
    assert review.dominant_colours == ("red", "white")
    again = ImageReview.from_dict(json.loads(json.dumps(review.to_dict())))
    assert again == review
    rejected = parse_review({**VALID, "shows_product": True, "issues": ["watermark"]}, reviewer="m")
    assert not rejected.approved  # shows the product, but an issue still means a retake


def test_over_long_texts_are_cut_at_a_word_not_refused() -> None:
    review = parse_review({**VALID, "alt_text": "word " * 60, "caption": "x " * 400}, reviewer="m")
    assert len(review.alt_text) <= ALT_TEXT_MAX and review.alt_text.endswith("…")
    assert not review.alt_text.startswith("word word wor…")  # cut between words


@pytest.mark.parametrize(
    ("answer", "message"),
    [("not json {", "not JSON"),
     ("[1, 2]", "JSON list, expected an object"),
     (json.dumps({k: v for k, v in VALID.items() if k != "caption"}), "lacks 'caption'"),
     (json.dumps({**VALID, "shows_product": "yes"}), "'shows_product' must be true or false"),
     (json.dumps({**VALID, "issues": ["blurry"]}), "unknown issue 'blurry'"),
     (json.dumps({**VALID, "issues": "person"}), "'issues' must be a list of strings"),
     (json.dumps({**VALID, "alt_text": "   "}), "'alt_text' is empty"),
     (json.dumps({**VALID, "visible_text": None}), "'visible_text' must be a string")],
)  # fmt: skip
def test_parse_review_refuses_what_is_not_a_review(answer: str, message: str) -> None:
    with pytest.raises(ReviewFormatError, match=message):
        parse_review(answer, reviewer="m")


def test_dominant_colours_come_from_the_pixels() -> None:
    assert dominant_colours(red_bottle()) == ["white", "red"]  # by share: the background is larger
    blue = Image.new("RGB", (300, 200), (40, 85, 200))
    assert dominant_colours(blue) == ["blue"]
    assert all(name in COLOUR_NAMES for name in dominant_colours(render_product_card(PRODUCT, 256)))


def test_offline_descriptions_say_what_the_image_is_and_are_never_the_template(bundled) -> None:
    alt, caption = offline_description(PRODUCT, "card")
    assert alt == "Illustrated product card: Acme Red Glass Bottle, 750 ml (Drinkware)"
    assert caption.startswith("An illustrated product card showing the name Red Glass Bottle, 750 ml by Acme")
    assert "colour red" in caption and "material glass" in caption
    photo_alt, photo_caption = offline_description(PRODUCT, "photo")
    assert photo_alt.startswith("Product photo: Acme Red Glass Bottle") and "photo" in photo_caption
    for product in bundled:
        for kind in ("card", "photo"):
            alt, caption = offline_description(product, kind)
            assert 0 < len(alt) <= ALT_TEXT_MAX and not is_template_alt_text(alt), product["id"]
            assert product["name"][:40] in caption or product["name"][:40] in alt, product["id"]
    assert is_template_alt_text(bundled[0]["image"]["alt_text"])  # the catalog's own: "Image of ..."


def test_a_long_name_still_fits_the_alt_text_limit() -> None:
    long = {**PRODUCT, "name": "Extra " * 60 + "Bottle"}
    alt, _ = offline_description(long, "card")
    assert len(alt) <= ALT_TEXT_MAX and alt.startswith("Illustrated product card: Acme Extra")


@pytest.mark.parametrize(
    ("issues", "expected"),
    [(["wrong_object"], "Show exactly the product"),
     (["garbled_text"], "correctly spelt"),
     (["person"], "No people"),
     (["multiple_products"], "only one product"),
     (["watermark"], "No watermark"),
     (["off_white_background"], "pure-white"),
     (["other"], "clean, accurate catalog photo"),
     ([], "Show exactly the product")],  # not shown, no issue named: a wrong object
)  # fmt: skip
def test_retake_suffix_addresses_each_issue(issues: list[str], expected: str) -> None:
    assert expected in retake_suffix(issues)


def test_retake_prompt_keeps_the_prompt_and_adds_every_fix() -> None:
    review = parse_review(
        {**VALID, "shows_product": False, "issues": ["person", "multiple_products"]}, reviewer="m"
    )
    prompt = retake_prompt("Product: Red bottle.", review)
    assert prompt.startswith("Product: Red bottle.\nRetake:")
    assert prompt.index("No people") < prompt.index("only one product")  # in ISSUES order, stable


# -- the offline reviewer --------------------------------------------------------------------------------


def test_offline_reviewer_approves_its_own_cards_and_says_it_is_offline(bundled) -> None:
    reviewer = OfflineImageReviewerResource().get_client()
    assert reviewer.offline and not reviewer.paid and reviewer.model == OFFLINE_REVIEWER
    for product in bundled[:5]:
        card = render_product_card(product, 512)
        review = reviewer.review(product=product, image=card, source_model=OFFLINE_MODEL)
        assert review.approved and review.offline and review.reviewer == OFFLINE_REVIEWER
        assert (
            review.alt_text.startswith("Illustrated product card:")
            and product["name"][:30] in review.alt_text
        )
        assert review.visible_text.startswith(product["name"])
        assert review.dominant_colours and all(c in COLOUR_NAMES for c in review.dominant_colours)
    photo = reviewer.review(product=PRODUCT, image=red_bottle(), source_model="gpt-image-2")
    assert photo.alt_text.startswith("Product photo:") and photo.visible_text == "" and photo.offline
    assert photo.dominant_colours == ("white", "red")


@pytest.mark.parametrize(
    ("label", "card"),
    [("offline-card-v1", True), ("offline-card-v2", True), (OFFLINE_MODEL, True), ("gpt-image-2", False),
     (None, False), ("offline", False)],
)  # fmt: skip
def test_which_images_are_the_renderers_own(label, card: bool) -> None:
    assert is_offline_card(label) is card


def test_offline_reviewer_takes_image_bytes_too() -> None:
    out = io.BytesIO()
    red_bottle().save(out, "PNG")
    review = OfflineImageReviewer().review(product=PRODUCT, image=out.getvalue())
    assert review.dominant_colours == ("white", "red")


# -- the OpenAI reviewer through the SDK, against the stand-in -------------------------------------------


server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0)


def reviewer_for(standin: StandInServer, **settings) -> OpenAIImageReviewer:
    resource = OpenAIImageReviewerResource(
        api_key=settings.pop("api_key", KEY), base_url=standin.base_url, **settings
    )
    return resource.get_client()


def test_openai_reviewer_reviews_through_the_responses_api(standin: StandInServer) -> None:
    reviewer = reviewer_for(standin)
    assert reviewer.model == DEFAULT_REVIEW_MODEL and reviewer.paid and not reviewer.offline
    review = reviewer.review(product=PRODUCT, image=red_bottle())
    assert review.approved and not review.offline and review.reviewer == DEFAULT_REVIEW_MODEL
    assert "Red Glass Bottle" in review.alt_text and len(review.alt_text) <= ALT_TEXT_MAX
    assert "red" in review.dominant_colours and "white" in review.dominant_colours
    assert review.usage["input_tokens"] > 85 and review.usage["output_tokens"] > 0  # one low-detail image
    stats = standin.stats()["reviews"]
    assert stats["products"]["PROD-000001"]["requests"] == 1  # attributed by X-Client-Request-Id


def test_the_image_sent_is_a_small_jpeg_variant() -> None:
    url = image_data_url(Image.new("RGB", (2048, 1024), (200, 30, 40)))
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.format == "JPEG" and max(sent.size) == 512


def test_reject_setting_gives_a_rejected_review_and_a_retake(standin: StandInServer) -> None:
    standin.configure(review_reject=["PROD-000002"])
    reviewer = reviewer_for(standin)
    rejected = reviewer.review(product={**PRODUCT, "id": "PROD-000002"}, image=red_bottle())
    kept = reviewer.review(product=PRODUCT, image=red_bottle())
    assert (rejected.approved, rejected.shows_product, rejected.issues) == (False, False, ("wrong_object",))
    assert kept.approved
    assert "Show exactly the product" in retake_prompt("p", rejected)
    assert standin.stats()["reviews"]["rejected"] == 1


def test_describe_reads_a_stand_in_image_without_a_product(standin: StandInServer) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0)
    prompt = "Stainless steel water bottle, 750 ml, studio photo"
    generated = client.images.generate(model="gpt-image-2", prompt=prompt, output_format="png")
    image = Image.open(io.BytesIO(base64.b64decode(generated.data[0].b64_json)))
    described = reviewer_for(standin).describe(image)
    assert described.visible_text == prompt and "Stainless steel water bottle" in described.caption
    assert not described.offline


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [("server_error", ErrorClass.TRANSIENT),
     ("rate_limit", ErrorClass.RATE_LIMITED),
     ("insufficient_quota", ErrorClass.QUOTA_EXHAUSTED),
     ("permission_denied", ErrorClass.CONFIGURATION),
     ("hang", ErrorClass.TRANSIENT)],
)  # fmt: skip
def test_review_failures_are_classified(standin: StandInServer, fault: str, error_class: ErrorClass) -> None:
    standin.configure(review_faults={fault: 1.0})
    with pytest.raises(ImageAPIError) as caught:
        reviewer_for(standin, timeout_s=0.5).review(product=PRODUCT, image=red_bottle())
    assert caught.value.error_class is error_class
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no SDK traceback chained


def test_a_wrong_key_or_model_fails_naming_the_setting_never_the_key(standin: StandInServer) -> None:
    wrong = "sk-wrong-key-that-must-not-leak-42"
    reviewer = reviewer_for(standin, api_key=wrong)
    with pytest.raises(ImageAPIError) as caught:
        reviewer.review(product=PRODUCT, image=red_bottle())
    assert caught.value.error_class is ErrorClass.CONFIGURATION and "OPENAI_API_KEY" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(reviewer)
    assert wrong not in repr(OpenAIImageReviewerResource(api_key=wrong))
    with pytest.raises(ImageAPIError) as missing:
        reviewer_for(standin, model="gpt-2-vision").review(product=PRODUCT, image=red_bottle())
    assert missing.value.error_class is ErrorClass.CONFIGURATION
    assert "image reviewer's `model`" in str(missing.value) and "image generator" not in str(missing.value)


def test_a_malformed_answer_is_an_invalid_response_not_a_crash(standin: StandInServer) -> None:
    reviewer = reviewer_for(standin)
    response = openai.types.responses.Response.model_validate(
        {"id": "resp_1", "object": "response", "created_at": 0, "model": "m", "status": "completed",
         "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                     "content": [{"type": "output_text", "text": "{\"shows_product\": true}", "annotations": []}]}],
         "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}
    )  # fmt: skip
    with pytest.raises(ImageAPIError) as caught:
        reviewer._review(response)
    assert caught.value.error_class is ErrorClass.INVALID_IMAGE and "lacks 'issues'" in str(caught.value)


def test_check_config_stops_the_run_before_any_call(standin: StandInServer) -> None:
    with pytest.raises(RunStopped, match="OPENAI_API_KEY is not set"):
        reviewer_for(standin, api_key="").check_config()
    with pytest.raises(RunStopped, match="timeout_s must be positive"):
        reviewer_for(standin, timeout_s=0).check_config()
    reviewer_for(standin).check_config()
    assert standin.stats()["reviews"]["requests"] == 0
