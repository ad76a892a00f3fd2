"""The stand-in's Responses API (image review with JSON-schema output) and Embeddings API, driven through
the real `openai` SDK over HTTP."""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
import time

import httpx2
import openai
import pytest
from PIL import Image, ImageDraw

from catalog_assets.standin import StandInClient, StandInServer
from catalog_assets.standin.review import product_of
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-standin-review-0123456789abcdef"
MODEL = "gpt-5.4-mini"
ISSUES = ["wrong_object", "garbled_text", "person", "multiple_products", "watermark",
          "off_white_background", "other"]  # fmt: skip
REVIEW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["shows_product", "issues", "visible_text", "alt_text", "caption", "dominant_colours"],
    "properties": {
        "shows_product": {"type": "boolean"},
        "issues": {"type": "array", "items": {"type": "string", "enum": ISSUES}},
        "visible_text": {"type": "string"},
        "alt_text": {"type": "string", "maxLength": 125},
        "caption": {"type": "string"},
        "dominant_colours": {"type": "array", "items": {"type": "string"}},
    },
}


server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0)


def sdk(standin: StandInServer, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0, timeout=timeout)


def data_url(image: Image.Image, size: int = 256) -> str:
    out = io.BytesIO()
    image.convert("RGB").resize((size, size)).save(out, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def red_bottle() -> Image.Image:
    image = Image.new("RGB", (512, 512), (250, 250, 250))
    ImageDraw.Draw(image).rectangle((180, 80, 330, 460), fill=(205, 25, 35))
    return image


def review(client: openai.OpenAI, image_url: str, text: str, schema=REVIEW_SCHEMA, request_id=None, **kw):
    return client.responses.create(
        model=kw.pop("model", MODEL),
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": text},
                    {"type": "input_image", "image_url": image_url, "detail": "low"},
                ],
            }
        ],  # fmt: skip
        text={"format": {"type": "json_schema", "name": "image_review", "schema": schema, "strict": True}},
        extra_headers={"X-Client-Request-Id": request_id} if request_id else None,
        **kw,
    )


PROMPT = "Review this product image.\nProduct id: {pid}\nProduct: {name}\nCategory: Home"


def test_review_fills_the_schema_from_pixels_and_prompt(standin: StandInServer) -> None:
    client = sdk(standin)
    response = review(
        client, data_url(red_bottle()), PROMPT.format(pid="PROD-000001", name="Red glass bottle")
    )
    assert response.object == "response" and response.status == "completed" and response.model == MODEL
    result = json.loads(response.output_text)
    assert list(result) == REVIEW_SCHEMA["required"]  # exactly the schema's properties
    assert result["shows_product"] is True and result["issues"] == []
    assert "red" in result["dominant_colours"] and "white" in result["dominant_colours"]
    assert "Red glass bottle" in result["alt_text"] and len(result["alt_text"]) <= 125
    assert "Red glass bottle" in result["caption"] and "white background" in result["caption"]
    assert result["visible_text"] == ""  # an image the stand-in did not draw: no text it can read
    usage = response.usage
    assert (
        usage is not None and usage.input_tokens > 85 and usage.output_tokens > 0
    )  # 85: one low-detail image
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    again = review(client, data_url(red_bottle()), PROMPT.format(pid="PROD-000001", name="Red glass bottle"))
    assert again.output_text == response.output_text  # deterministic
    assert standin.stats()["reviews"]["products"]["PROD-000001"]["requests"] == 2


def test_review_reads_the_text_of_images_the_stand_in_drew(standin: StandInServer) -> None:
    client = sdk(standin)
    prompt = "Stainless steel water bottle, 750 ml, studio photo"
    generated = client.images.generate(model="gpt-image-2", prompt=prompt, output_format="png")
    image = Image.open(io.BytesIO(base64.b64decode(generated.data[0].b64_json)))
    # A small re-encoded variant, as a pipeline would send: still recognised.
    result = json.loads(
        review(client, data_url(image, 320), "Describe this photo for product search.").output_text
    )
    assert result["visible_text"] == prompt
    assert (
        "Stainless steel water bottle" in result["caption"]
        and "Stainless steel water bottle" in result["alt_text"]
    )


def test_reject_setting_judges_chosen_products_as_not_shown(standin: StandInServer) -> None:
    standin.configure(review_reject=["PROD-000012"])
    client = sdk(standin)
    url = data_url(red_bottle())

    def shows(pid: str, *, header: bool = False) -> tuple[bool, list[str]]:
        text = PROMPT.format(pid="" if header else pid, name="Red glass bottle")
        result = json.loads(
            review(client, url, text, request_id=f"{pid}-a1-x1" if header else None).output_text
        )
        return result["shows_product"], result["issues"]

    assert shows("PROD-000012") == (False, ["wrong_object"])
    assert shows("PROD-000012", header=True) == (False, ["wrong_object"])  # id from X-Client-Request-Id
    assert shows("PROD-000013") == (True, [])

    StandInClient(standin.root_url).configure(review_reject=[], review_reject_rate=0.1)  # over HTTP
    verdicts = {pid: shows(pid)[0] for pid in (f"PROD-{i:06d}" for i in range(1, 101))}
    rejected = sorted(pid for pid, ok in verdicts.items() if not ok)
    assert 4 <= len(rejected) <= 18
    assert rejected == sorted(pid for pid in verdicts if not shows(pid)[0])  # the same ones again
    stats = standin.stats()["reviews"]
    assert stats["rejected"] == 2 + 2 * len(rejected)


@pytest.mark.parametrize(
    ("text", "header", "expected"),
    [("Review.\nProduct id: PROD-000044\nProduct: Mug", None, "PROD-000044"),
     ("product_id=SKU-9", None, "SKU-9"),
     ("Product id:\nProduct: Red bottle PROD-000045", None, "PROD-000045"),  # an empty id line names none
     ("Product: Red bottle", "PROD-000046", "PROD-000046"),
     ("Product id: PROD-000047", "PROD-000048", "PROD-000048"),  # the header wins
     ("Product: Red bottle", None, None)],
)  # fmt: skip
def test_how_the_reviewed_product_is_named(text: str, header: str | None, expected: str | None) -> None:
    assert product_of([text], header) == expected


def test_strict_schema_rules_and_other_shapes(standin: StandInServer) -> None:
    client = sdk(standin)
    url = data_url(red_bottle())
    loose = {**REVIEW_SCHEMA, "required": ["shows_product"]}
    with pytest.raises(openai.BadRequestError) as caught:
        review(client, url, "x", schema=loose)
    assert caught.value.code == "invalid_json_schema" and "Missing 'issues'" in caught.value.message
    nested = {
        "type": "object", "additionalProperties": False, "required": ["verdict", "colours", "score"],
        "properties": {
            "verdict": {"type": "object", "additionalProperties": False, "required": ["shows_product", "note"],
                        "properties": {"shows_product": {"type": "boolean"}, "note": {"type": ["string", "null"]}}},
            "colours": {"type": "array", "maxItems": 2, "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "hex"],
                "properties": {"name": {"type": "string"}, "hex": {"type": "string"}}}},
            "score": {"type": "integer"},
        },
    }  # fmt: skip
    result = json.loads(review(client, url, "Product: Red glass bottle", schema=nested).output_text)
    assert set(result) == {"verdict", "colours", "score"} and set(result["verdict"]) == {
        "shows_product",
        "note",
    }
    assert len(result["colours"]) <= 2 and result["colours"][0]["hex"].startswith("#")
    plain = client.responses.create(model=MODEL, input="Describe a red bottle.")
    assert plain.output_text  # no format: plain text


@pytest.mark.parametrize(
    ("image_url", "model", "exc", "code"),
    [
        ("data:image/jpeg;base64," + base64.b64encode(b"not an image").decode(), MODEL,
         openai.BadRequestError, "invalid_image_format"),
        ("https://example.invalid/a.jpg", MODEL, openai.BadRequestError, "invalid_image_url"),
        (None, "gpt-2", openai.NotFoundError, "model_not_found"),
    ],
)  # fmt: skip
def test_bad_review_requests(standin: StandInServer, image_url, model, exc, code) -> None:
    with pytest.raises(exc) as caught:
        review(sdk(standin), image_url or data_url(red_bottle()), "x", model=model)
    assert caught.value.code == code


def test_review_faults_and_rate_limit(standin: StandInServer) -> None:
    client = sdk(standin)
    url = data_url(red_bottle())
    standin.configure(review_faults={"server_error": 1.0}, first_attempt_only=True)
    with pytest.raises(openai.InternalServerError):
        review(client, url, "x", request_id="PROD-000001-a1-aa")
    review(client, url, "x", request_id="PROD-000001-a2-bb")  # the retry passes
    standin.configure(review_faults={}, review_requests_per_minute=60)
    ok = client.responses.with_raw_response.create(model=MODEL, input="x")
    assert ok.headers["x-ratelimit-limit-requests"] == "60"
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model=MODEL, input="x")
    assert (
        caught.value.code == "rate_limit_exceeded"
        and int(caught.value.response.headers["retry-after-ms"]) > 0
    )
    standin.configure(review_requests_per_minute=None, review_faults={"hang": 1.0}, first_attempt_only=False)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        sdk(standin, timeout=0.3).responses.create(model=MODEL, input="x")
    assert time.monotonic() - started < 1.5
    wrong = openai.OpenAI(api_key="sk-wrong-000000000000", base_url=standin.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="text-embedding-3-small", input="x")
    outcomes = standin.stats()["reviews"]["by_outcome"]
    assert (outcomes["server_error"], outcomes["rate_limited"]) == (1, 1)


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors(standin: StandInServer) -> None:
    client = sdk(standin)
    texts = ["blue hand soap, 250 ml", "Blue hand soap 500 ml refill", "black leather office chair"]
    response = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=512)
    assert response.model == "text-embedding-3-small" and response.object == "list"
    vectors = [item.embedding for item in response.data]  # the SDK asked for base64 and decoded it
    assert [item.index for item in response.data] == [0, 1, 2]
    for vector in vectors:
        assert len(vector) == 512 and math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, abs_tol=1e-5)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3  # shared words: closer
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=texts[0], dimensions=512, encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)  # same text, same vector
    raw = httpx2.post(
        f"{standin.base_url}/embeddings", headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"},
    ).json()  # fmt: skip
    assert isinstance(raw["data"][0]["embedding"], str)
    assert len(base64.b64decode(raw["data"][0]["embedding"])) == 1536 * 4  # float32, full size by default
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    stats = standin.stats()["embeddings"]
    assert (stats["requests"], stats["items"]) == (3, 5)


@pytest.mark.parametrize(
    ("params", "exc", "param"),
    [({"model": "text-embedding-ada-002", "dimensions": 512}, openai.BadRequestError, "dimensions"),
     ({"dimensions": 0}, openai.BadRequestError, "dimensions"),
     ({"dimensions": 4000}, openai.BadRequestError, "dimensions"),
     ({"input": ""}, openai.BadRequestError, "input[0]"),
     ({"model": "text-embedding-9"}, openai.NotFoundError, "model")],
)  # fmt: skip
def test_bad_embedding_requests(standin: StandInServer, params: dict, exc, param: str) -> None:
    with pytest.raises(exc) as caught:
        sdk(standin).embeddings.create(**{"model": "text-embedding-3-small", "input": "soap", **params})
    assert caught.value.param == param


def test_reviews_and_embeddings_run_in_batches_too(standin: StandInServer) -> None:
    client = sdk(standin)
    url = data_url(red_bottle())
    fmt = {"type": "json_schema", "name": "image_review", "schema": REVIEW_SCHEMA, "strict": True}
    lines = [
        {"custom_id": pid, "method": "POST", "url": "/v1/responses", "body": {
            "model": MODEL, "text": {"format": fmt}, "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "Product: Red glass bottle"},
                {"type": "input_image", "image_url": url, "detail": "low"}]}]}}
        for pid in ("PROD-000001", "PROD-000002")
    ]  # fmt: skip
    standin.configure(review_reject=["PROD-000002"])
    uploaded = client.files.create(file=("r.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()),
                                   purpose="batch")  # fmt: skip
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    deadline = time.monotonic() + 30
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline and batch.status in ("validating", "in_progress", "finalizing")
        time.sleep(0.05)
    verdicts = {}
    for row in client.files.content(batch.output_file_id).text.splitlines():
        item = json.loads(row)
        body = openai.types.responses.Response.model_validate(item["response"]["body"])
        verdicts[item["custom_id"]] = json.loads(body.output_text)["shows_product"]
    assert verdicts == {"PROD-000001": True, "PROD-000002": False}
    assert standin.stats()["images_billed_batch"] == 0


def test_help_documents_the_new_options() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "catalog_assets.standin", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    for option in ("--batch-line-delay", "--batch-fault", "--batch-unsupported-model", "--batch-expire-after-lines",
                   "--review-reject", "--review-reject-rate", "--embedding-fault", "X-Client-Request-Id"):  # fmt: skip
        assert option in shown.stdout
