"""The Images API stand-in, driven through the real `openai` SDK over HTTP: response and error shapes,
rate limit, fault injection, per-product counts and runtime configuration."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai
import pytest
from PIL import Image, ImageStat

from catalog_assets.standin import (
    EARLIER_ATTEMPT_FAULTS,
    StandInClient,
    StandInConfig,
    StandInProcess,
    StandInServer,
    format_duration,
    parse_client_request_id,
)
from catalog_assets.standin.state import draw_fault
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-standin-test-0123456789abcdef"


server, standin = standin_server_fixtures(api_key=KEY, hang_s=2.0, fault_retry_after_s=0.2)


def sdk(standin: StandInServer, key: str = KEY, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=standin.base_url, max_retries=0, timeout=timeout)


def generate(client: openai.OpenAI, prompt: str = "a blue ceramic mug", request_id: str | None = None, **kw):
    headers = {"X-Client-Request-Id": request_id} if request_id else None
    return client.images.generate(
        model=kw.pop("model", "gpt-image-2"), prompt=prompt, extra_headers=headers, **kw
    )


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_success_has_the_images_response_shape_and_a_real_image(standin: StandInServer) -> None:
    answer = httpx2.post(
        f"{standin.base_url}/images/generations",
        headers={"Authorization": f"Bearer {KEY}"},
        json={
            "model": "gpt-image-2",
            "prompt": "a red cotton t-shirt",
            "output_format": "jpeg",
            "quality": "low",
        },
        timeout=10,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) >= {"created", "data", "usage", "output_format", "quality", "size"}
    assert (body["output_format"], body["quality"], body["size"]) == ("jpeg", "low", "1024x1024")
    usage = body["usage"]
    assert set(usage) == {"input_tokens", "input_tokens_details", "output_tokens", "total_tokens"}
    assert set(usage["input_tokens_details"]) == {"text_tokens", "image_tokens"}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    image = decode(body["data"][0]["b64_json"])
    assert (image.format, image.size) == ("JPEG", (1024, 1024))
    assert min(ImageStat.Stat(image.convert("L")).stddev) > 20  # not blank or flat
    assert answer.headers["x-request-id"].startswith("req_")

    parsed = generate(sdk(standin), output_format="jpeg")  # the SDK parses it as an ImagesResponse
    assert parsed.usage is not None and parsed.usage.output_tokens > 0
    assert decode(parsed.data[0].b64_json).size == (1024, 1024)


@pytest.mark.parametrize(
    ("output_format", "size", "pil_format", "pixels"),
    [("png", "1536x1024", "PNG", (1536, 1024)), ("webp", "1024x1536", "WEBP", (1024, 1536)),
     ("jpeg", "auto", "JPEG", (1024, 1024)), ("jpeg", "1280x720", "JPEG", (1280, 720))],
)  # fmt: skip
def test_formats_and_sizes(
    standin: StandInServer, output_format: str, size: str, pil_format: str, pixels
) -> None:
    response = generate(sdk(standin), output_format=output_format, size=size)
    image = decode(response.data[0].b64_json)
    assert (image.format, image.size) == (pil_format, pixels)
    assert response.output_format == output_format


def _dhash(image: Image.Image) -> int:
    small = image.convert("L").resize((9, 8)).tobytes()
    return sum(1 << i for i in range(64) if small[i + i // 8] > small[i + i // 8 + 1])


def test_images_differ_per_prompt(standin: StandInServer) -> None:
    client = sdk(standin)
    prompts = [f"Nike Air Max running shoe, size {n}" for n in range(5)] + ["a lamp", "a lamp."]
    hashes = [_dhash(decode(generate(client, p).data[0].b64_json)) for p in prompts]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert bin(hashes[i] ^ hashes[j]).count("1") >= 10, (prompts[i], prompts[j])


def test_rate_limit_answers_429_with_retry_headers(standin: StandInServer) -> None:
    # one every 5 s, 2 at once: the third call comes long before the bucket refills, however slow the machine
    standin.configure(images_per_minute=12, burst=2)
    client = sdk(standin)
    ok = client.images.with_raw_response.generate(model="gpt-image-2", prompt="one")
    assert ok.headers["x-ratelimit-limit-images"] == "12"
    assert ok.headers["x-ratelimit-remaining-images"] == "1"
    assert re.fullmatch(r"\d+(\.\d+)?(ms|s)", ok.headers["x-ratelimit-reset-images"])  # e.g. 5s, 250ms
    generate(client, "two")
    with pytest.raises(openai.RateLimitError) as caught:
        generate(client, "three")
    err = caught.value
    assert (err.status_code, err.code, err.type) == (429, "rate_limit_exceeded", "requests")
    headers = err.response.headers
    wait_ms = int(headers["retry-after-ms"])
    assert 0 < wait_ms <= 5000
    assert headers["retry-after"] == str(max(1, math.ceil(wait_ms / 1000)))
    assert headers["x-ratelimit-remaining-images"] == "0"
    assert set(err.body) == {"message", "type", "param", "code"}
    time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.02)
    generate(client, "four")  # the advice was right
    assert standin.stats()["by_outcome"] == {"ok": 3, "rate_limited": 1}


@pytest.mark.parametrize(
    ("kind", "exc_type", "status", "code", "type_"),
    [
        ("rate_limit", openai.RateLimitError, 429, "rate_limit_exceeded", "requests"),
        ("insufficient_quota", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
        (
            "moderation_blocked",
            openai.BadRequestError,
            400,
            "moderation_blocked",
            "image_generation_user_error",
        ),
        ("server_error", openai.InternalServerError, 500, "server_error", "server_error"),
        ("invalid_key", openai.AuthenticationError, 401, "invalid_api_key", "invalid_request_error"),
        ("permission_denied", openai.PermissionDeniedError, 403, None, "invalid_request_error"),
    ],
)
def test_each_injected_fault(standin: StandInServer, kind, exc_type, status, code, type_) -> None:
    standin.configure(faults={kind: 1.0})
    with pytest.raises(exc_type) as caught:
        generate(sdk(standin), request_id="PROD-000001-a1-ab12")
    assert (caught.value.status_code, caught.value.code, caught.value.type) == (status, code, type_)
    if kind == "rate_limit":
        assert caught.value.response.headers["retry-after-ms"] == "200"
    stats = standin.stats()
    assert stats["faults_injected"] == {kind: 1}
    assert stats["products"]["PROD-000001"]["calls"][0]["status"] == status


def test_hang_holds_the_connection_past_the_client_timeout(standin: StandInServer) -> None:
    standin.configure(faults={"hang": 1.0}, hang_s=1.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        generate(sdk(standin, timeout=0.3))
    assert time.monotonic() - started < 1.0
    time.sleep(1.4)
    assert standin.stats()["by_outcome"] == {"hang": 1}


def test_wrong_and_missing_keys_get_401(standin: StandInServer) -> None:
    wrong = "sk-wrong-9876543210fedcba"
    with pytest.raises(openai.AuthenticationError) as caught:
        generate(sdk(standin, key=wrong))
    assert caught.value.code == "invalid_api_key"
    assert wrong not in str(caught.value) and "dcba" in str(caught.value)  # a partial echo, as the real API
    missing = httpx2.post(f"{standin.base_url}/images/generations", json={"prompt": "x"}, timeout=5)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["dall-e-2", "dall-e-3", "gpt-image-1", "no-such-model"])
def test_unknown_and_retired_models_are_not_found(standin: StandInServer, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        generate(sdk(standin), model=model)
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")


@pytest.mark.parametrize(
    ("params", "param"),
    [({"n": 11}, "n"), ({"size": "1000x1000"}, "size"), ({"output_format": "gif"}, "output_format"),
     ({"quality": "ultra"}, "quality"), ({"prompt": ""}, "prompt")],
)  # fmt: skip
def test_invalid_parameters_get_400(standin: StandInServer, params: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        generate(sdk(standin), **params)
    assert (caught.value.type, caught.value.param) == ("invalid_request_error", param)


def test_moderation_words_block_deterministically(standin: StandInServer) -> None:
    standin.configure(moderation_words=["rifle", "Bikini"])
    client = sdk(standin)
    for prompt in ["a hunting RIFLE scope", "Rifle case, black", "red bikini top"]:
        with pytest.raises(openai.BadRequestError) as caught:
            generate(client, prompt)
        assert caught.value.code == "moderation_blocked"
    generate(client, "a rifleman's hat")  # whole words only
    generate(client, "a brown leather belt")


def test_first_attempt_only_faults(standin: StandInServer) -> None:
    standin.configure(faults={"server_error": 1.0}, first_attempt_only=True)
    client = sdk(standin)
    with pytest.raises(openai.InternalServerError):
        generate(client, request_id="PROD-000007-a1-0001")
    generate(client, request_id="PROD-000007-a2-0002")
    generate(client, request_id="PROD-000008-a3-0003")
    assert standin.stats()["products"]["PROD-000007"]["by_outcome"] == {"server_error": 1, "ok": 1}


def test_fault_draws_are_seeded_and_reproducible(standin: StandInServer) -> None:
    standin.configure(faults={"rate_limit": 0.3}, seed=42)
    client = sdk(standin)

    def outcomes() -> list[str]:
        seen = []
        for i in range(40):
            try:
                generate(client, f"product {i}", request_id=f"PROD-{i:06d}-a1-{i:04x}", output_format="jpeg")
                seen.append("ok")
            except openai.RateLimitError:
                seen.append("429")
        return seen

    first = outcomes()
    standin.reset()
    assert outcomes() == first
    assert 4 <= first.count("429") <= 20


def test_earlier_attempt_mix_matches_the_reported_split() -> None:
    config = StandInConfig(faults=EARLIER_ATTEMPT_FAULTS, first_attempt_only=True)
    draws = [draw_fault(config, None, f"PROD-{i:06d}\x001\x001") for i in range(20000)]  # type: ignore[arg-type]
    failed = [d for d in draws if d]
    assert len(failed) / len(draws) == pytest.approx(0.22, abs=0.01)
    for kind, share in {
        "rate_limit": 0.42,
        "moderation_blocked": 0.31,
        "hang": 0.18,
        "server_error": 0.09,
    }.items():
        assert failed.count(kind) / len(failed) == pytest.approx(share, abs=0.02)


def test_counts_requests_per_product(standin: StandInServer) -> None:
    standin.configure(faults={"server_error": 1.0}, first_attempt_only=True)
    client = sdk(standin)
    with pytest.raises(openai.InternalServerError):
        generate(client, request_id="PROD-000123-a1-9f3c")
    generate(client, request_id="PROD-000123-a2-77aa")
    generate(client)  # no request id: unattributed
    stats = standin.stats()
    product = stats["products"]["PROD-000123"]
    assert product["requests"] == 2 and product["attempts"] == [1, 2]
    assert product["by_outcome"] == {"server_error": 1, "ok": 1}
    assert [c["status"] for c in product["calls"]] == [500, 200]
    assert product["calls"][0]["t_end"] <= product["calls"][1]["t_start"]
    assert stats["requests"] == 3 and stats["unattributed"] == 1 and stats["images"] == 2
    assert stats["by_status"] == {"200": 2, "500": 1}
    assert stats["request_ids"] == ["PROD-000123-a1-9f3c", "PROD-000123-a2-77aa"]
    assert stats["recent_requests"][-1]["model"] == "gpt-image-2"
    StandInClient(standin.root_url).reset()
    assert standin.stats()["requests"] == 0


def test_serves_many_concurrent_requests(standin: StandInServer) -> None:
    # Concurrency is read from the server's own high-water mark, not from the wall clock: each call is held
    # long enough that all 30 are in flight together even on a loaded machine.
    standin.configure(latency_s=3.0)
    client = sdk(standin)
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(lambda i: generate(client, f"p{i}", request_id=f"P-{i}-a1-x"), range(30)))
    assert len(results) == 30
    assert standin.stats()["concurrency_high_water"] == 30


def test_config_changes_at_runtime_over_http(standin: StandInServer) -> None:
    control = StandInClient(standin.root_url)
    client = sdk(standin)
    assert control.configure(faults={"server_error": 1.0})["faults"] == {"server_error": 1.0}
    with pytest.raises(openai.InternalServerError):
        generate(client)
    control.configure(faults={})
    generate(client)  # recovered
    assert json.loads(httpx2.get(f"{standin.root_url}/_config").text)["api_key"] == "<required>"
    bad = httpx2.post(f"{standin.root_url}/_config", json={"faults": {"meteor": 0.5}})
    assert bad.status_code == 400 and "meteor" in bad.json()["error"]["message"]
    assert httpx2.post(f"{standin.root_url}/_config", json={"colour": "red"}).status_code == 400


def test_health_and_unknown_paths(standin: StandInServer) -> None:
    assert httpx2.get(f"{standin.root_url}/healthz").json() == {"status": "ok"}
    missing = httpx2.post(f"{standin.base_url}/chat/completions", json={})
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_url_response_shape(standin: StandInServer) -> None:
    standin.configure(response_shape="url")
    response = generate(sdk(standin), output_format="png")
    assert response.data[0].b64_json is None
    image = Image.open(io.BytesIO(httpx2.get(response.data[0].url).content))
    assert (image.format, image.size) == ("PNG", (1024, 1024))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (0.0, "0ms"), (1.0, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3600, "1h0m0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PROD-000123-a2-9f3c", ("PROD-000123", 2)),
        ("x%2Fy%20z-a1-ab", ("x/y z", 1)),
        ("PROD-1", None),
        (None, None),
    ],
)
def test_parse_client_request_id(value, expected) -> None:
    assert parse_client_request_id(value) == expected


def test_cli_runs_as_a_subprocess_on_a_free_port() -> None:
    with StandInProcess(["--api-key", "sk-cli-test-key", "--images-per-minute", "600"]) as process:
        assert process.base_url.startswith("http://127.0.0.1:") and process.base_url.endswith("/v1")
        client = openai.OpenAI(
            api_key="sk-cli-test-key", base_url=process.base_url, max_retries=0, timeout=10
        )
        headers = client.images.with_raw_response.generate(model="gpt-image-2", prompt="x").headers
        assert headers["x-ratelimit-limit-images"] == "600"
        assert process.stats()["requests"] == 1
    assert process.process is not None and process.process.poll() is not None
    shown = subprocess.run(
        [sys.executable, "-m", "catalog_assets.standin", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--images-per-minute" in shown.stdout and "--fault" in shown.stdout
