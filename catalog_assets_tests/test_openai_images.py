"""The OpenAI image generator and the error classification, through the real `openai` SDK over HTTP
against the local stand-in: one attempt per call, every failure classified, the key never shown."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
import traceback
from datetime import date

import openai
import pytest
from dagster import DagsterInstance, EnvVar, MaterializeResult, asset, materialize
from dagster._serdes import serialize_value
from PIL import Image

from catalog_assets.cards import OFFLINE_MODEL
from catalog_assets.costs import load_prices, price_per_image
from catalog_assets.errors import (
    ErrorClass,
    ImageAPIError,
    RunStopped,
    classify_openai_error,
    parse_reset_duration,
    parse_retry_after,
)
from catalog_assets.resources.image_api import ImageGeneratorResource
from catalog_assets.resources.openai_images import (
    OpenAIImageGenerator,
    OpenAIImageGeneratorResource,
    check_model,
    client_request_id,
)
from catalog_assets.standin import StandInServer
from catalog_assets.standin.protocol import masked
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-proj-TESTkey0123456789abcdefWXYZ"


server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0, fault_retry_after_s=0.25)


def make_generator(standin: StandInServer, **settings) -> OpenAIImageGenerator:
    settings = {"api_key": KEY, "base_url": standin.base_url, "timeout_s": 5.0, **settings}
    return OpenAIImageGeneratorResource(**settings).get_client()


def attempt(
    generator: OpenAIImageGenerator, product_id: str = "PROD-000001", n: int = 1, prompt: str = "a mug"
):
    return generator.generate(product_id=product_id, prompt=prompt, attempt=n)


def test_generate_returns_jpeg_bytes_from_b64_json(standin: StandInServer) -> None:
    standin.configure(images_per_minute=600)
    generated = attempt(make_generator(standin))
    image = Image.open(io.BytesIO(generated.data))
    assert (image.format, image.size) == ("JPEG", (1024, 1024))
    assert generated.model == "gpt-image-2"
    assert generated.usage["output_tokens"] > 0 and "input_text_tokens" in generated.usage
    assert generated.headers["x-ratelimit-limit-images"] == "600"
    sent = standin.stats()["recent_requests"][-1]
    assert (sent["model"], sent["size"], sent["quality"], sent["output_format"]) == (
        "gpt-image-2",
        "1024x1024",
        "medium",
        "jpeg",
    )
    assert (sent["output_compression"], sent["moderation"], sent["n"]) == (85, "auto", 1)


def test_compression_is_sent_only_where_the_format_takes_it(standin: StandInServer) -> None:
    generated = attempt(make_generator(standin, output_format="png"))
    assert Image.open(io.BytesIO(generated.data)).format == "PNG"
    assert standin.stats()["recent_requests"][-1]["output_compression"] is None


def test_url_shape_is_downloaded_within_the_size_cap(standin: StandInServer) -> None:
    standin.configure(response_shape="url")
    generated = attempt(make_generator(standin))
    assert Image.open(io.BytesIO(generated.data)).size == (1024, 1024)

    with pytest.raises(ImageAPIError) as caught:
        attempt(make_generator(standin, max_download_bytes=10_000))
    assert caught.value.error_class is ErrorClass.INVALID_IMAGE
    assert "max_download_bytes=10000" in caught.value.message
    assert "sig=" not in caught.value.message  # the signed query string is not shown


@pytest.mark.parametrize(
    ("fault", "error_class", "status"),
    [
        ("rate_limit", ErrorClass.RATE_LIMITED, 429),
        ("insufficient_quota", ErrorClass.QUOTA_EXHAUSTED, 429),
        ("moderation_blocked", ErrorClass.CONTENT_POLICY, 400),
        ("server_error", ErrorClass.TRANSIENT, 500),
        ("invalid_key", ErrorClass.CONFIGURATION, 401),
        ("permission_denied", ErrorClass.CONFIGURATION, 403),
    ],
)
def test_every_fault_is_classified_after_exactly_one_call(standin, fault, error_class, status) -> None:
    standin.configure(faults={fault: 1.0})
    with pytest.raises(ImageAPIError) as caught:
        attempt(make_generator(standin))
    err = caught.value
    assert (err.error_class, err.status_code) == (error_class, status)
    assert "\n" not in err.message and KEY not in str(err)
    assert standin.stats()["requests"] == 1  # the SDK's own retries are off
    if fault == "rate_limit":
        assert err.retry_after_s == pytest.approx(0.25)
        assert err.code == "rate_limit_exceeded"
    if error_class is ErrorClass.CONFIGURATION:
        assert "OPENAI_API_KEY" in err.message


@pytest.mark.parametrize(
    ("settings", "error_class", "named"),
    [
        ({"model": "gpt-image-9"}, ErrorClass.CONFIGURATION, "`model`"),  # 404 model_not_found
        ({"size": "1000x1000"}, ErrorClass.BAD_REQUEST, "size"),  # other 400
        ({"base_url": "http://127.0.0.1:9/v1"}, ErrorClass.TRANSIENT, "connection"),  # nothing listens
    ],
)
def test_configuration_bad_request_and_connection_errors(standin, settings, error_class, named) -> None:
    with pytest.raises(ImageAPIError) as caught:
        attempt(make_generator(standin, **settings))
    assert caught.value.error_class is error_class
    assert named in caught.value.message


def test_sdk_exceptions_map_directly(standin: StandInServer) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0, timeout=5)
    standin.configure(faults={"insufficient_quota": 1.0})
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model="gpt-image-2", prompt="x")
    assert classify_openai_error(caught.value).error_class is ErrorClass.QUOTA_EXHAUSTED
    assert classify_openai_error(ImageAPIError(ErrorClass.STORE, "kept")).error_class is ErrorClass.STORE
    assert classify_openai_error(TimeoutError("slow")).error_class is ErrorClass.TRANSIENT
    assert classify_openai_error(ValueError("odd")).error_class is ErrorClass.BAD_REQUEST


def test_the_limiters_429_carries_its_retry_after(standin: StandInServer) -> None:
    standin.configure(images_per_minute=60, burst=1)
    generator = make_generator(standin)
    attempt(generator)
    with pytest.raises(ImageAPIError) as caught:
        attempt(generator, n=2)
    err = caught.value
    assert err.error_class is ErrorClass.RATE_LIMITED
    assert 0.8 < err.retry_after_s <= 1.0  # from retry-after-ms
    assert err.headers["x-ratelimit-limit-images"] == "60"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("12", 12.0),
     ("1.5", 1.5), ("20us", 2e-5), ("", None), (None, None), ("soon", None), ("5 s", None)],
)  # fmt: skip
def test_parse_reset_duration(text, seconds) -> None:
    assert parse_reset_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "Sun, 06 Nov 1994 08:49:40 GMT"}, 10.0),  # HTTP date, 10 s after `now`
        ({"x-ratelimit-reset-images": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, seconds) -> None:
    now = 784111770.0  # 1994-11-06 08:49:30 UTC
    assert parse_retry_after(headers, now=now) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_hung_request_is_abandoned_at_the_timeout(standin: StandInServer) -> None:
    standin.configure(faults={"hang": 1.0}, hang_s=2.0)
    started = time.monotonic()
    with pytest.raises(ImageAPIError) as caught:
        attempt(make_generator(standin, timeout_s=0.4))
    elapsed = time.monotonic() - started
    assert caught.value.error_class is ErrorClass.TRANSIENT
    assert 0.35 < elapsed < 1.5
    assert "timed out" in caught.value.message


def test_an_invalid_key_is_a_configuration_error_that_never_shows_the_key(standin: StandInServer) -> None:
    wrong = "sk-proj-WRONGkey9876543210zyxwvuts"
    with pytest.raises(ImageAPIError) as caught:
        attempt(make_generator(standin, api_key=wrong))
    err = caught.value
    assert err.error_class is ErrorClass.CONFIGURATION and err.status_code == 401
    assert "OPENAI_API_KEY" in err.message
    shown = "\n".join(
        [str(err), repr(err), err.message, "".join(traceback.format_exception(err)), str(err.headers)]
    )
    assert wrong not in shown and masked(wrong) not in shown and wrong[-4:] not in shown
    assert err.__cause__ is None and err.__context__ is None  # no chained SDK error echoing the key


@pytest.mark.parametrize("model", ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-2025-04-15"])
def test_retired_models_stop_the_run_before_any_call(standin: StandInServer, model: str) -> None:
    generator = make_generator(standin, model=model)
    with pytest.raises(RunStopped) as caught:
        generator.check_config()
    assert caught.value.error_class is ErrorClass.CONFIGURATION
    assert "gpt-image-2" in caught.value.message and model in caught.value.message
    assert standin.stats()["requests"] == 0


def test_models_retiring_on_2026_12_01(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_model("gpt-image-1.5", today=date(2026, 11, 28))
    assert "shuts down on 2026-12-01" in caplog.text
    with pytest.raises(RunStopped, match="gpt-image-2"):
        check_model("gpt-image-1-mini", today=date(2026, 12, 1))
    check_model("gpt-image-2", today=date(2030, 1, 1))


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"api_key": ""}, "OPENAI_API_KEY"), ({"quality": "ultra"}, "quality"), ({"output_format": "gif"}, "output_format"),
     ({"base_url": "ftp://x"}, "OPENAI_BASE_URL"), ({"timeout_s": 0}, "timeout_s")],
)  # fmt: skip
def test_check_config_names_the_setting(standin: StandInServer, settings: dict, named: str) -> None:
    with pytest.raises(RunStopped) as caught:
        make_generator(standin, **settings).check_config()
    assert named in caught.value.message
    assert standin.stats()["requests"] == 0


def test_the_standin_sees_the_client_request_id(standin: StandInServer) -> None:
    generator = make_generator(standin)
    attempt(generator, "PROD-000123", n=2)
    attempt(generator, "Züri/../ x", n=1)
    stats = standin.stats()
    assert re.fullmatch(r"PROD-000123-a2-[0-9a-f]{8}", stats["request_ids"][0])
    assert stats["products"]["PROD-000123"]["attempts"] == [2]
    assert stats["products"]["Züri/../ x"]["attempts"] == [1]  # odd ids arrive percent-encoded, intact
    assert stats["request_ids"][1].isascii()
    assert len(client_request_id("P" * 2000, 3)) <= 512


def test_the_bucket_name_holds_a_hash_of_the_key(standin: StandInServer) -> None:
    generator = make_generator(standin)
    bucket = generator.rate_limit_bucket()
    account = f"{generator.client().base_url}|{KEY}"
    assert bucket == f"openai:{hashlib.sha256(account.encode()).hexdigest()[:16]}:gpt-image-2"
    assert KEY not in bucket
    # the same key at another endpoint is another account: its own limits and its own verdict
    elsewhere = OpenAIImageGeneratorResource(api_key=KEY, base_url="http://127.0.0.1:9/v1").get_client()
    assert elsewhere.rate_limit_bucket() != bucket


def test_reprs_never_show_the_key(standin: StandInServer) -> None:
    resource = OpenAIImageGeneratorResource(api_key=KEY, base_url=standin.base_url)
    generator = resource.get_client()
    attempt(generator)  # with a live SDK client inside
    for text in (repr(resource), str(resource), repr(generator), str(generator), repr(vars(generator))):
        assert KEY not in text


def test_base_url_comes_from_openai_base_url(standin: StandInServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", standin.base_url)
    generator = OpenAIImageGeneratorResource(api_key=KEY).get_client()
    assert attempt(generator).data
    assert standin.stats()["requests"] == 1


@asset
def one_image(image_generator: ImageGeneratorResource) -> MaterializeResult:
    generator = image_generator.get_client()
    generator.check_config()
    generated = generator.generate(product_id="PROD-000001", prompt="a mug", attempt=1)
    return MaterializeResult(
        metadata={
            "bytes": len(generated.data),
            "bucket": generator.rate_limit_bucket(),
            "generator": str(generator),
        }
    )


@pytest.mark.parametrize("key", [KEY, "sk-proj-LEAKYkey5555555555abcdefghij"])
def test_the_key_stays_out_of_a_dagster_run(standin, monkeypatch, key: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", key)
    resource = OpenAIImageGeneratorResource(api_key=EnvVar("OPENAI_API_KEY"), base_url=standin.base_url)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [one_image], resources={"image_generator": resource}, instance=instance, raise_on_error=False
        )
        assert result.success is (key == KEY)
        records = serialize_value(instance.all_logs(result.run_id))
        run = serialize_value(instance.get_run_by_id(result.run_id))
    for text in (records, run):
        assert key not in text and masked(key) not in text
    if key != KEY:
        assert "OPENAI_API_KEY" in records  # the failure names the setting


def test_price_table() -> None:
    assert "estimate" in load_prices()["_note"].lower()
    assert price_per_image("gpt-image-2", "medium", "1024x1024") == 0.042
    assert price_per_image("gpt-image-2-2026-04-21", "high", "1536x1024") == 0.25
    assert price_per_image("gpt-image-2", "auto", "auto") == 0.25  # the budget guard never under-counts
    assert price_per_image(OFFLINE_MODEL, "standard", "1024x1024") == 0.0
    assert price_per_image("dall-e-3", "hd", "1024x1024") is None
