"""The stand-in's Files and Batches API, driven through the real `openai` SDK over HTTP: upload, create,
poll, download; counts and billing; line faults, validation failure, expiry, cancellation, pagination and
a big output file streamed with bounded server memory."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import openai
import pytest
from PIL import Image

from catalog_assets.standin import EARLIER_ATTEMPT_FAULTS, StandInProcess, StandInServer
from catalog_assets.standin.__main__ import config_from_args, parse_args
from catalog_assets.standin.render import GRADIENT_CACHE_BYTES
from catalog_assets_tests.support import standin_server_fixtures

KEY = "sk-standin-batch-0123456789abcdef"
ENDPOINT = "/v1/images/generations"
TERMINAL = ("completed", "failed", "expired", "cancelled")


server, standin = standin_server_fixtures(api_key=KEY, batch_delay_s=0.01)


def sdk(base_url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=30)


def line(custom_id: str, prompt: str | None = None, **body) -> dict:
    body = {"model": "gpt-image-2", "prompt": prompt or f"product photo of {custom_id}", "quality": "low",
            "output_format": "jpeg", "size": "1024x1024", **body}  # fmt: skip
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in lines).encode()


def submit(client: openai.OpenAI, lines: list[dict], **kw):
    uploaded = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h", **kw)


def wait(client: openai.OpenAI, batch_id: str, statuses=TERMINAL, limit_s: float = 60.0):
    deadline = time.monotonic() + limit_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.05)


def read_lines(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(raw) for raw in client.files.content(file_id).text.splitlines()]


def ids(n: int, prefix: str = "PROD") -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(1, n + 1)]


def test_upload_create_poll_and_download(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    uploaded = client.files.create(file=("input.jsonl", jsonl([line(c) for c in ids(4)])), purpose="batch")
    assert (uploaded.object, uploaded.purpose, uploaded.filename) == ("file", "batch", "input.jsonl")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(jsonl([line(c) for c in ids(4)]))
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
    created = client.batches.create(
        input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h",
        metadata={"partition": "batch-0001", "content_hash": "ab" * 32},
    )  # fmt: skip
    assert created.status == "validating" and created.id.startswith("batch_")
    assert created.expires_at == created.created_at + 86400
    batch = wait(client, created.id)
    assert batch.status == "completed" and batch.error_file_id is None and batch.errors is None
    assert batch.request_counts.model_dump() == {"total": 4, "completed": 4, "failed": 0}
    assert batch.metadata == {"partition": "batch-0001", "content_hash": "ab" * 32}
    assert batch.model == "gpt-image-2" and batch.endpoint == ENDPOINT
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.usage is not None and batch.usage.output_tokens > 0
    output = client.files.retrieve(batch.output_file_id)
    assert output.purpose == "batch_output"
    lines = read_lines(client, batch.output_file_id)
    assert sorted(item["custom_id"] for item in lines) == ids(4)
    for item in lines:
        assert item["id"].startswith("batch_req_") and item["error"] is None
        response = item["response"]
        assert response["status_code"] == 200 and response["request_id"].startswith("req_")
        body = response["body"]  # the same ImagesResponse as the sync endpoint
        assert set(body) >= {"created", "data", "usage", "output_format", "quality", "size"}
        image = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
        assert (image.format, image.size) == ("JPEG", (1024, 1024))
    stats = standin.stats()
    assert (stats["images_billed_batch"], stats["images_billed_sync"]) == (4, 0)
    assert stats["billed_products"]["PROD-000003"] == {"sync": 0, "batch": 1}
    endpoints = stats["endpoints"]
    assert (endpoints["files.create"], endpoints["batches.create"], endpoints["files.content"]) == (1, 1, 1)
    assert endpoints["batches.retrieve"] >= 1 and endpoints["files.retrieve"] == 2
    assert stats["batches_ended"] == {"completed": 1} and stats["content_bytes_served"] == output.bytes


def test_billing_distinguishes_sync_from_batch_images(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    client.images.generate(
        model="gpt-image-2", prompt="a mug", extra_headers={"X-Client-Request-Id": "PROD-000001-a1-aa"}
    )
    # custom_id forms that bill their product: plain id, request-id style, id:anything
    batch = submit(client, [line("PROD-000001-a2-bb"), line("PROD-000002"), line("PROD-000003:f00d")])
    assert wait(client, batch.id).status == "completed"
    stats = standin.stats()
    assert (stats["images_billed_sync"], stats["images_billed_batch"]) == (1, 3)
    assert stats["billed_products"] == {
        "PROD-000001": {"sync": 1, "batch": 1},
        "PROD-000002": {"sync": 0, "batch": 1},
        "PROD-000003": {"sync": 0, "batch": 1},
    }


def test_line_fault_mix_lands_in_the_error_file_classified(standin: StandInServer) -> None:
    mix = {"moderation_blocked": 0.2, "content_policy_violation": 0.1, "server_error": 0.15, "hang": 0.1}
    standin.configure(batch_faults=mix)
    client = sdk(standin.base_url)
    custom_ids = ids(60)
    batch = wait(client, submit(client, [line(c) for c in custom_ids]).id)
    assert batch.status == "completed"
    output, errors = read_lines(client, batch.output_file_id), read_lines(client, batch.error_file_id)
    assert len(output) == batch.request_counts.completed and len(errors) == batch.request_counts.failed
    assert sorted(item["custom_id"] for item in output + errors) == custom_ids
    codes = {}
    for item in errors:
        assert item["error"] is None  # refusals are answers, not transport errors
        status, error = item["response"]["status_code"], item["response"]["body"]["error"]
        assert set(error) == {"message", "type", "param", "code"}
        codes[item["custom_id"]] = (status, error["code"])
    kinds = set(codes.values())
    assert kinds <= {(400, "moderation_blocked"), (400, "content_policy_violation"), (500, "server_error")}
    assert len(kinds) == 3  # every class appears in 60 lines at these rates
    injected = standin.stats()["batch_faults_injected"]
    assert sum(injected.values()) == len(errors)
    transient = injected.get("server_error", 0) + injected.get("hang", 0)
    assert sum(1 for s, _ in codes.values() if s == 500) == transient
    assert standin.stats()["images_billed_batch"] == len(output)

    standin.reset()  # the draws are a hash of the custom_id: the same lines fail again
    again = wait(client, submit(client, [line(c) for c in custom_ids]).id)
    assert {i["custom_id"] for i in read_lines(client, again.error_file_id)} == set(codes)


def test_earlier_attempt_mix_and_first_attempt_only_for_batch_lines(standin: StandInServer) -> None:
    config = config_from_args(parse_args(["--earlier-attempt-mix", "--batch-fault", "server_error=0.5"]))
    assert config.first_attempt_only
    assert config.batch_faults == {**EARLIER_ATTEMPT_FAULTS, "server_error": 0.5}
    standin.configure(batch_faults={"server_error": 1.0}, first_attempt_only=True)
    client = sdk(standin.base_url)
    first = wait(client, submit(client, [line(c) for c in ids(3)]).id)
    assert first.request_counts.failed == 3
    # Resubmitted with the same custom_ids: a second attempt passes; a1 in the custom_id is a first attempt.
    second = wait(client, submit(client, [line(c) for c in ids(3)] + [line("PROD-000009-a1-x")]).id)
    assert (second.request_counts.completed, second.request_counts.failed) == (3, 1)


def test_moderation_words_refuse_batch_lines(standin: StandInServer) -> None:
    standin.configure(moderation_words=["rifle"])
    client = sdk(standin.base_url)
    batch = wait(
        client, submit(client, [line("PROD-000001", "a hunting rifle scope"), line("PROD-000002")]).id
    )
    errors = read_lines(client, batch.error_file_id)
    assert [(e["custom_id"], e["response"]["status_code"], e["response"]["body"]["error"]["code"])
            for e in errors] == [("PROD-000001", 400, "moderation_blocked")]  # fmt: skip
    assert standin.stats()["billed_products"] == {"PROD-000002": {"sync": 0, "batch": 1}}


def test_invalid_line_bodies_are_answered_per_line(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    batch = wait(client, submit(client, [line("PROD-000001", size="1000x1000"), line("PROD-000002")]).id)
    assert batch.status == "completed"
    (error,) = read_lines(client, batch.error_file_id)
    assert error["response"]["status_code"] == 400 and error["response"]["body"]["error"]["param"] == "size"


def test_validation_failure_names_the_model(standin: StandInServer) -> None:
    standin.configure(batch_unsupported_models=["gpt-image-2"])
    client = sdk(standin.base_url)
    batch = wait(client, submit(client, [line(c) for c in ids(3)]).id)
    assert batch.status == "failed" and batch.failed_at
    assert batch.output_file_id is None and batch.error_file_id is None
    (error,) = batch.errors.data
    assert (error.code, error.param, error.line) == ("model_not_found", "body.model", 1)
    assert "gpt-image-2" in error.message and "Batch API" in error.message
    assert standin.stats()["images_billed_batch"] == 0
    ok = wait(client, submit(client, [line("PROD-000001", model="gpt-image-1.5")]).id)
    assert ok.status == "completed"  # other models still pass


def test_enqueued_limit_fails_a_batch_past_it(standin: StandInServer) -> None:
    standin.configure(batch_queue_limit=5, batch_hold=True)
    client = sdk(standin.base_url)
    running = submit(client, [line(c) for c in ids(4)])
    wait(client, running.id, statuses=("in_progress",))  # held: still in flight below
    refused = wait(client, submit(client, [line(c) for c in ids(2, prefix="OTHER")]).id)
    assert refused.status == "failed"
    (error,) = refused.errors.data
    assert error.code == "token_limit_exceeded" and "limit 5" in error.message
    client.batches.cancel(running.id)
    assert wait(client, running.id).status == "cancelled"
    standin.configure(batch_hold=False)
    assert wait(client, submit(client, [line(c) for c in ids(2, prefix="LATER")]).id).status == "completed"


def test_faults_of_the_batch_endpoints_themselves(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    batch = submit(client, [line("PROD-000001")])
    standin.configure(batch_api_faults={"server_error": 1.0})
    with pytest.raises(openai.InternalServerError):
        client.batches.retrieve(batch.id)
    standin.configure(batch_api_faults={"rate_limit": 1.0})
    with pytest.raises(openai.RateLimitError) as caught:
        client.batches.list()
    assert caught.value.response.headers["retry-after-ms"]
    standin.configure(batch_api_faults={"hang": 1.0}, hang_s=1.0)
    with pytest.raises(openai.APITimeoutError):
        openai.OpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0, timeout=0.3).files.retrieve(
            batch.input_file_id
        )
    standin.configure(batch_api_faults={})
    assert wait(client, batch.id).status == "completed"  # the batch itself ran on
    injected = standin.stats()["faults_injected"]
    assert injected == {
        "batches.retrieve:server_error": 1,
        "batches.list:rate_limit": 1,
        "files.retrieve:hang": 1,
    }


def test_input_lines_are_validated(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    bad = [line("A"), line("A"), {**line("B"), "method": "GET"}, {**line("C"), "url": "/v1/embeddings"}]
    uploaded = client.files.create(
        file=("input.jsonl", jsonl(bad) + b"{not json\n" + jsonl([{"method": "POST"}])), purpose="batch"
    )
    batch = wait(client, client.batches.create(input_file_id=uploaded.id, endpoint=ENDPOINT,
                                               completion_window="24h").id)  # fmt: skip
    assert batch.status == "failed"
    found = {(e.code, e.line) for e in batch.errors.data}
    assert {("duplicate_custom_id", 2), ("invalid_method", 3), ("invalid_url", 4), ("invalid_json_line", 5),
            ("missing_required_parameter", 6)} <= found  # fmt: skip
    standin.configure(batch_max_lines=2)
    too_many = wait(client, submit(client, [line(c) for c in ids(3)]).id)
    assert too_many.status == "failed" and too_many.errors.data[0].code == "too_many_requests"


def test_expiry_keeps_completed_lines_and_lists_the_rest(standin: StandInServer) -> None:
    standin.configure(batch_expire_after_lines=3)
    client = sdk(standin.base_url)
    batch = wait(client, submit(client, [line(c) for c in ids(8)]).id)
    assert batch.status == "expired" and batch.expired_at
    assert batch.request_counts.model_dump() == {"total": 8, "completed": 3, "failed": 5}
    output, errors = read_lines(client, batch.output_file_id), read_lines(client, batch.error_file_id)
    assert [o["custom_id"] for o in output] == ids(3)
    assert [e["custom_id"] for e in errors] == ids(8)[3:]
    assert {(e["response"], e["error"]["code"]) for e in errors} == {(None, "batch_expired")}
    assert standin.stats()["images_billed_batch"] == 3


def test_completion_window_expires_a_slow_batch(standin: StandInServer) -> None:
    standin.configure(batch_window_s=0.5, batch_line_delay_s=0.2)
    client = sdk(standin.base_url)
    batch = wait(client, submit(client, [line(c) for c in ids(10)]).id)
    assert batch.status == "expired"
    counts = batch.request_counts
    assert counts.completed < 10 and counts.completed + counts.failed == 10
    errors = read_lines(client, batch.error_file_id)
    assert len(errors) == counts.failed and {e["error"]["code"] for e in errors} == {"batch_expired"}


def test_cancellation_keeps_partial_output(standin: StandInServer) -> None:
    standin.configure(batch_line_delay_s=0.2)  # 8 s of lines: the cancellation lands mid-batch
    client = sdk(standin.base_url)
    created = submit(client, [line(c) for c in ids(40)])
    deadline = time.monotonic() + 30
    while client.batches.retrieve(created.id).request_counts.completed < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    batch = wait(client, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    counts = batch.request_counts
    assert 2 <= counts.completed < 40 and counts.completed + counts.failed == 40
    output, errors = read_lines(client, batch.output_file_id), read_lines(client, batch.error_file_id)
    assert len(output) == counts.completed == standin.stats()["images_billed_batch"]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and len(errors) == counts.failed
    assert sorted(i["custom_id"] for i in output + errors) == ids(40)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(wait(client, submit(client, [line("PROD-000001")]).id).id)  # already completed


def test_list_pages_newest_first(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    before = {b.id for b in client.batches.list(limit=100)}
    made = [submit(client, [line("PROD-000001")], metadata={"n": str(i)}).id for i in range(5)]
    newest_first = [b.id for b in client.batches.list(limit=2) if b.id not in before]  # auto-paginates
    assert newest_first == made[::-1]
    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == made[:2:-1] and page.has_more
    raw = httpx2.get(f"{standin.base_url}/batches", params={"limit": 2, "after": made[3]},
                     headers={"Authorization": f"Bearer {KEY}"}).json()  # fmt: skip
    assert [b["id"] for b in raw["data"]] == [made[2], made[1]]
    assert (raw["first_id"], raw["last_id"], raw["has_more"]) == (made[2], made[1], True)
    assert standin.stats()["endpoints"]["batches.list"] >= 3
    for batch_id in made:
        wait(client, batch_id)


def test_files_and_batches_refuse_bad_requests(standin: StandInServer) -> None:
    client = sdk(standin.base_url)
    uploaded = client.files.create(file=("input.jsonl", jsonl([line("A")])), purpose="batch")
    create = {"input_file_id": uploaded.id, "endpoint": ENDPOINT, "completion_window": "24h"}
    cases = [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"endpoint": "/v1/images/variations"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
    ]
    for change, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.batches.create(**{**create, **change})
        assert caught.value.param == param
    client.batches.create(**{**create, "metadata": {"k" * 64: "v" * 512}})  # the limits themselves pass
    with pytest.raises(openai.NotFoundError):
        client.batches.create(**{**create, "input_file_id": "file-missing"})
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("input.csv", b"a,b\n"), purpose="batch")
    assert caught.value.code == "invalid_file_format"
    standin.configure(file_max_bytes=1000)
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
    assert caught.value.code == "file_too_large"
    with pytest.raises(openai.AuthenticationError):
        sdk(standin.base_url, key="sk-wrong-0000000000000").files.create(
            file=("input.jsonl", b"{}\n"), purpose="batch"
        )
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)


def test_chunked_upload_is_read_as_a_stream(standin: StandInServer) -> None:
    payload = jsonl([line(c) for c in ids(3)])
    boundary = "standinboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n".encode(),
        *(payload[i : i + 7] for i in range(0, len(payload), 7)),  # tiny chunks split every delimiter
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    url = urlsplit(standin.root_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request(
        "POST", "/v1/files", body=iter(parts), encode_chunked=True,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    answer = connection.getresponse()
    uploaded = json.loads(answer.read())
    assert answer.status == 200, uploaded
    assert uploaded["bytes"] == len(payload)
    assert sdk(standin.base_url).files.content(uploaded["id"]).content == payload


def _rss_kib(pid: int, field: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    raise AssertionError(field)


@pytest.mark.resilience  # renders 100 images of 2048x2048: tens of seconds on a loaded machine
def test_big_output_is_streamed_with_bounded_server_memory() -> None:
    """100 images of 2048x2048 PNG (about 20 MB of output): the server renders one line at a time and
    serves the file in chunks, so its peak memory grows by far less than the file's size."""
    with StandInProcess(["--api-key", KEY, "--batch-delay", "0"]) as process:
        assert process.process is not None
        pid = process.process.pid
        client = sdk(process.base_url)
        lines = [line(c, size="2048x2048", output_format="png") for c in ids(100)]
        baseline = _rss_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # restart the peak (VmHWM) from now
        batch = wait(client, submit(client, lines).id, limit_s=300)
        assert batch.status == "completed" and batch.request_counts.completed == 100
        processing_peak = _rss_kib(pid, "VmHWM")
        size = client.files.retrieve(batch.output_file_id).bytes
        assert size > 15 * 1024 * 1024
        before_download = _rss_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        received = 0
        with client.files.with_streaming_response.content(batch.output_file_id) as response:
            for chunk in response.iter_bytes(256 * 1024):
                received += len(chunk)
        download_peak = _rss_kib(pid, "VmHWM")
        assert received == size
        growth_processing = processing_peak - baseline
        growth_download = download_peak - before_download
        print(
            f"\noutput {size / 2**20:.1f} MiB; server peak RSS growth: processing {growth_processing / 1024:.1f}"
            f" MiB, download {growth_download / 1024:.1f} MiB"
        )
        assert growth_download * 1024 < size / 4  # not the whole file in memory
        # Rendering holds one line's 2048x2048 image (and its encodings) at a time, and its gradient cache
        # is bounded in bytes: the working set levels off after the first lines (about 200-300 MiB here)
        # instead of growing with the batch, as a cache bounded in entries did (1 GiB for this batch).
        assert growth_processing * 1024 < GRADIENT_CACHE_BYTES + 320 * 2**20
