"""The S3 store over real HTTP against moto's S3 server: keys, headers, checksums, idempotence, conditional
create, listing, URLs, and one-line errors for configuration mistakes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from dagster import EnvVar, asset, materialize
from dagster_aws.s3 import S3Resource

from catalog_assets.errors import StoreError
from catalog_assets.resources.s3_store import S3ImageStore, S3ImageStoreResource, checksum_sha256_b64
from catalog_assets.resources.store import CACHE_CONTROL_IMAGES, JPEG, JSON, ImageStore
from catalog_assets_tests.s3_fixtures import (  # the *_fixture imports register fixtures by their names
    DUMMY_SECRET_ACCESS_KEY,
    ProxiedRequest,
    S3Proxy,
    aws_env_fixture,  # noqa: F401
    create_iam_user,
    moto_client,
    moto_endpoint_fixture,  # noqa: F401
    moto_enforcing_iam,
    s3_bucket_fixture,  # noqa: F401
    s3_proxy_fixture,  # noqa: F401
)

PREFIX = "catalog/v1"
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"jpeg body " * 500 + b"\xff\xd9"
THUMB_BYTES = b"\xff\xd8\xff\xe0" + b"thumb" * 50 + b"\xff\xd9"
IMAGE_METADATA = {"prompt-fingerprint": "fp-0123abcd", "model": "gpt-image-2", "source": "generated"}


def make_store(bucket: str, **fields) -> S3ImageStore:
    fields.setdefault("prefix", PREFIX)
    return S3ImageStoreResource(bucket=bucket, **fields).get_client()


def assert_one_clear_line(error: StoreError, *must_contain: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert DUMMY_SECRET_ACCESS_KEY not in message
    for part in must_contain:
        assert part in message, f"{part!r} not in {message!r}"
    # `raise ... from None`: no chained botocore traceback under the message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.fixture
def store(s3_bucket: str) -> S3ImageStore:
    return make_store(s3_bucket)


# -- keys, headers, metadata --------------------------------------------------------------------------------


def test_images_and_thumbnails_live_under_the_prefix_with_their_headers(
    store: S3ImageStore, aws_env: str
) -> None:
    image = store.put("images/PROD-000001.jpg", JPEG_BYTES, content_type=JPEG, metadata=IMAGE_METADATA)
    thumb = store.put("thumbnails/PROD-000001.jpg", THUMB_BYTES, content_type=JPEG, metadata=IMAGE_METADATA)
    manifest = store.put_json("manifests/latest.json", {"rows": 1})
    sheet = store.put("reports/contact_sheet.png", b"\x89PNG sheet", content_type="image/png")

    assert image.uploaded and thumb.uploaded and manifest.uploaded and sheet.uploaded
    raw = moto_client(aws_env)
    keys = [o["Key"] for o in raw.list_objects_v2(Bucket=store.bucket)["Contents"]]
    assert keys == [
        "catalog/v1/images/PROD-000001.jpg",
        "catalog/v1/manifests/latest.json",
        "catalog/v1/reports/contact_sheet.png",
        "catalog/v1/thumbnails/PROD-000001.jpg",
    ]
    head = raw.head_object(Bucket=store.bucket, Key="catalog/v1/images/PROD-000001.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == CACHE_CONTROL_IMAGES
    assert head["Metadata"] == {**IMAGE_METADATA, "sha256": hashlib.sha256(JPEG_BYTES).hexdigest()}
    thumb_head = raw.head_object(Bucket=store.bucket, Key="catalog/v1/thumbnails/PROD-000001.jpg")
    assert thumb_head["ContentType"] == "image/jpeg" and thumb_head["CacheControl"] == CACHE_CONTROL_IMAGES
    # latest.json and the contact sheet change under one key: they must not be cached as immutable
    json_head = raw.head_object(Bucket=store.bucket, Key="catalog/v1/manifests/latest.json")
    assert json_head["ContentType"] == JSON and json_head["CacheControl"] == "no-cache"
    sheet_head = raw.head_object(Bucket=store.bucket, Key="catalog/v1/reports/contact_sheet.png")
    assert sheet_head["ContentType"] == "image/png" and sheet_head["CacheControl"] == "no-cache"

    found = store.head("images/PROD-000001.jpg")
    assert found is not None
    assert found.key == "images/PROD-000001.jpg"
    assert found.sha256 == hashlib.sha256(JPEG_BYTES).hexdigest() == image.object.sha256
    assert found.size == len(JPEG_BYTES)
    assert found.content_type == JPEG
    assert dict(found.metadata) == IMAGE_METADATA
    assert found.etag == hashlib.md5(JPEG_BYTES).hexdigest() == image.object.etag  # no quotes
    assert store.get("images/PROD-000001.jpg") == JPEG_BYTES
    assert store.location == f"s3://{store.bucket}/catalog/v1"


def test_absent_objects_read_as_none_and_keyerror_and_delete_removes(store: S3ImageStore) -> None:
    assert store.head("images/PROD-404.jpg") is None
    with pytest.raises(KeyError):
        store.get("images/PROD-404.jpg")
    store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)
    store.delete("images/PROD-1.jpg")
    assert store.head("images/PROD-1.jpg") is None
    assert store.get_json("manifests/latest.json", default={}) == {}


def test_get_refuses_an_object_whose_bytes_do_not_match_its_sha256(store: S3ImageStore, aws_env: str) -> None:
    moto_client(aws_env).put_object(
        Bucket=store.bucket, Key=f"{PREFIX}/images/PROD-2.jpg", Body=b"other", Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(StoreError, match="does not match its sha256"):
        store.get("images/PROD-2.jpg")


def test_get_refuses_an_object_whose_bytes_do_not_match_its_stored_checksum(
    store: S3ImageStore, aws_env: str
) -> None:
    moto_client(aws_env).put_object(  # moto keeps a wrong checksum as sent; botocore checks it on reading
        Bucket=store.bucket,
        Key=f"{PREFIX}/images/PROD-3.jpg",
        Body=b"other",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=checksum_sha256_b64(b"original"),
    )
    with pytest.raises(StoreError) as caught:
        store.get("images/PROD-3.jpg")
    assert_one_clear_line(caught.value, "images/PROD-3.jpg", "do not match its stored checksum")


def test_an_unknown_aws_profile_is_named(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreError) as caught:
        make_store(s3_bucket)
    assert_one_clear_line(caught.value, "'no-such-profile'", "AWS_PROFILE")


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"Prompt_Fingerprint": "x"}, "lower-case ascii"),
        ({"prompt fingerprint": "x"}, "lower-case ascii"),
        ({"sha256": "0" * 64}, "reserved"),
        ({"alt-text": "Café crème"}, "printable ascii"),
        ({"alt-text": "two\nlines"}, "printable ascii"),
        ({"alt-text": " padded "}, "printable ascii"),
        ({"attempts": 2}, "must be a str"),
        ({"prompt": "x" * 2100}, "S3 allows 2048"),
    ],
)
def test_bad_metadata_is_refused_before_any_request(
    s3_proxy: S3Proxy, s3_bucket: str, metadata: dict, complaint: str
) -> None:
    store = make_store(s3_bucket)
    s3_proxy.clear()
    with pytest.raises(StoreError, match=complaint) as caught:
        store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG, metadata=metadata)
    assert "\n" not in str(caught.value)
    assert s3_proxy.requests == []


# -- verified writes ----------------------------------------------------------------------------------------


def test_the_sha256_checksum_is_sent_and_stored_with_the_object(
    s3_proxy: S3Proxy, s3_bucket: str, aws_env: str
) -> None:
    store = make_store(s3_bucket)
    store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)

    (put,) = s3_proxy.matching("PUT")
    expected = base64.b64encode(hashlib.sha256(JPEG_BYTES).digest()).decode()
    assert put.headers["x-amz-checksum-sha256"] == expected == checksum_sha256_b64(JPEG_BYTES)
    head = moto_client(aws_env).head_object(
        Bucket=s3_bucket, Key=f"{PREFIX}/images/PROD-1.jpg", ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == expected


def test_a_body_corrupted_in_transit_is_rejected_and_nothing_is_stored(
    s3_proxy: S3Proxy, s3_bucket: str, aws_env: str
) -> None:
    store = make_store(s3_bucket)
    s3_proxy.corrupt_next_put = True
    with pytest.raises(StoreError) as caught:
        store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)

    assert_one_clear_line(caught.value, "BadDigest", "images/PROD-1.jpg", "nothing was stored")
    assert s3_proxy.count("PUT") == 1  # a 400 is not retried
    assert store.head("images/PROD-1.jpg") is None
    with pytest.raises(ClientError):
        moto_client(aws_env).head_object(Bucket=s3_bucket, Key=f"{PREFIX}/images/PROD-1.jpg")


def test_moto_itself_does_not_verify_checksums(s3_bucket: str, aws_env: str) -> None:
    """Why the proxy applies S3's checksum rule: moto 5.2.5 stores a body whose checksum is wrong. When this
    fails, moto verifies checksums itself and the proxy's rule can go."""
    wrong = checksum_sha256_b64(b"something else")
    moto_client(aws_env).put_object(
        Bucket=s3_bucket, Key="k", Body=b"body", ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong
    )
    assert moto_client(aws_env).head_object(Bucket=s3_bucket, Key="k")["ContentLength"] == len(b"body")


def test_the_same_bytes_are_not_uploaded_again(s3_proxy: S3Proxy, s3_bucket: str, aws_env: str) -> None:
    store = make_store(s3_bucket)
    first = store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG, metadata=IMAGE_METADATA)
    before = moto_client(aws_env).head_object(Bucket=s3_bucket, Key=f"{PREFIX}/images/PROD-1.jpg")
    s3_proxy.clear()

    again = store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG, metadata=IMAGE_METADATA)

    assert first.uploaded and not again.uploaded
    assert [r.method for r in s3_proxy.requests] == ["HEAD"]  # one head_object, no PUT at all
    assert again.object.sha256 == first.object.sha256 and again.object.etag == first.object.etag
    after = moto_client(aws_env).head_object(Bucket=s3_bucket, Key=f"{PREFIX}/images/PROD-1.jpg")
    assert after["LastModified"] == before["LastModified"] and after["ETag"] == before["ETag"]


def test_other_bytes_replace_the_object(store: S3ImageStore) -> None:
    store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)
    replaced = store.put("images/PROD-1.jpg", THUMB_BYTES, content_type=JPEG)
    assert replaced.uploaded
    assert store.get("images/PROD-1.jpg") == THUMB_BYTES
    assert store.head("images/PROD-1.jpg").sha256 == hashlib.sha256(THUMB_BYTES).hexdigest()


def test_throttling_and_5xx_are_retried_then_reported_in_one_line(s3_proxy: S3Proxy, s3_bucket: str) -> None:
    store = make_store(s3_bucket)
    s3_proxy.errors_to_answer = [(503, "SlowDown")]
    assert store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG).uploaded
    assert s3_proxy.count("HEAD") == 2  # the throttled head_object was retried by botocore

    once = make_store(s3_bucket, s3=S3Resource(max_attempts=1))  # max_attempts counts the first call
    s3_proxy.clear()
    s3_proxy.errors_to_answer = [(500, "InternalError")]
    with pytest.raises(StoreError) as caught:
        once.put("images/PROD-2.jpg", JPEG_BYTES, content_type=JPEG)
    assert_one_clear_line(caught.value, "HeadObject", "HTTP 500")
    assert s3_proxy.count("HEAD") == 1


def test_an_image_key_refuses_a_content_type_of_another_format(s3_proxy: S3Proxy, s3_bucket: str) -> None:
    store = make_store(s3_bucket)
    s3_proxy.clear()
    with pytest.raises(StoreError, match="expected 'image/jpeg'"):
        store.put("images/PROD-1.jpg", JPEG_BYTES, content_type="image/png")
    assert s3_proxy.requests == []


def test_create_only_keeps_an_existing_object(s3_proxy: S3Proxy, s3_bucket: str) -> None:
    store = make_store(s3_bucket)
    store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)
    s3_proxy.clear()

    kept = store.put("images/PROD-1.jpg", THUMB_BYTES, content_type=JPEG, create_only=True)

    assert not kept.uploaded
    assert kept.object.sha256 == hashlib.sha256(JPEG_BYTES).hexdigest()
    # the conditional PUT is the existence check: S3 refuses it (412) and the original stays
    assert s3_proxy.count("PUT") == 1 and s3_proxy.count("HEAD") == 1
    assert store.get("images/PROD-1.jpg") == JPEG_BYTES


def test_create_only_loses_a_race_gracefully(s3_proxy: S3Proxy, s3_bucket: str, aws_env: str) -> None:
    """Another writer creates the key between our head_object and our put: S3 answers 412, the winner stays."""
    store = make_store(s3_bucket)
    full_key = f"{PREFIX}/images/PROD-1.jpg"
    winner_bytes = b"\xff\xd8winner\xff\xd9"

    def other_writer_first(request: ProxiedRequest) -> None:
        if request.method == "PUT":
            s3_proxy.on_request = None
            winner = S3ImageStore(moto_client(aws_env), s3_bucket, prefix=PREFIX)
            winner.put("images/PROD-1.jpg", winner_bytes, content_type=JPEG)

    s3_proxy.on_request = other_writer_first
    result = store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG, create_only=True)

    (put,) = s3_proxy.matching("PUT")
    assert put.headers["if-none-match"] == "*"
    assert not result.uploaded
    assert result.object.sha256 == hashlib.sha256(winner_bytes).hexdigest()
    assert moto_client(aws_env).get_object(Bucket=s3_bucket, Key=full_key)["Body"].read() == winner_bytes


def test_create_only_writes_a_new_object_conditionally(s3_proxy: S3Proxy, s3_bucket: str) -> None:
    store = make_store(s3_bucket)
    created = store.put("images/PROD-9.jpg", JPEG_BYTES, content_type=JPEG, create_only=True)
    assert created.uploaded
    assert s3_proxy.matching("PUT")[0].headers["if-none-match"] == "*"
    assert store.get("images/PROD-9.jpg") == JPEG_BYTES


# -- listing ------------------------------------------------------------------------------------------------


def test_list_pages_through_more_than_1000_keys_relative_to_the_prefix(
    s3_proxy: S3Proxy, s3_bucket: str, aws_env: str
) -> None:
    raw = moto_client(aws_env)
    names = [f"PROD-{i:06d}.jpg" for i in range(1005)]

    def put(name: str) -> None:
        raw.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/images/{name}", Body=name.encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, names))
    raw.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/thumbnails/PROD-000000.jpg", Body=b"t")
    raw.put_object(Bucket=s3_bucket, Key="elsewhere/images/PROD-000000.jpg", Body=b"not ours")
    raw.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/images/", Body=b"")  # a console's folder marker

    store = make_store(s3_bucket)
    s3_proxy.clear()
    listed = list(store.list("images/"))

    assert [o.key for o in listed] == [f"images/{n}" for n in names]
    assert s3_proxy.count("GET", query_contains="list-type=2") == 2
    assert listed[7].size == len(names[7]) and listed[7].etag == hashlib.md5(names[7].encode()).hexdigest()
    assert listed[7].url == store.url("images/PROD-000007.jpg")

    small_pages = S3ImageStore(store._client, s3_bucket, prefix=PREFIX, list_page_size=300)
    s3_proxy.clear()
    assert [o.key for o in small_pages.list("images/PROD-0000")] == [f"images/{n}" for n in names[:100]]
    everything = [o.key for o in small_pages.list()]
    assert len(everything) == 1006 and everything[-1] == "thumbnails/PROD-000000.jpg"
    assert s3_proxy.count("GET", query_contains="list-type=2") == 1 + 4


# -- URLs ---------------------------------------------------------------------------------------------------


def test_url_uses_the_public_base_url(store: S3ImageStore, s3_bucket: str) -> None:
    cdn = make_store(s3_bucket, public_base_url="https://img.example.com/")
    assert cdn.url("images/PROD-000001.jpg") == "https://img.example.com/catalog/v1/images/PROD-000001.jpg"
    assert cdn.url_expires_in_s is None


@pytest.mark.parametrize(
    ("region", "bucket", "expected"),
    [
        (
            "us-east-1",
            "shop-images",
            "https://shop-images.s3.amazonaws.com/catalog/v1/images/PROD-000001.jpg",
        ),
        (
            "eu-west-1",
            "shop-images",
            "https://shop-images.s3.eu-west-1.amazonaws.com/catalog/v1/images/PROD-000001.jpg",
        ),
        (
            "eu-west-1",
            "shop.images",
            "https://s3.eu-west-1.amazonaws.com/shop.images/catalog/v1/images/PROD-000001.jpg",
        ),
    ],
)
def test_url_defaults_to_the_virtual_hosted_https_url_on_aws(
    monkeypatch: pytest.MonkeyPatch, region: str, bucket: str, expected: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    store = make_store(bucket, s3=S3Resource(region_name=region))  # no request: a URL is computed
    assert store.url("images/PROD-000001.jpg") == expected
    assert store.url_expires_in_s is None


def test_url_under_a_custom_endpoint_is_path_style_and_fetchable(store: S3ImageStore, aws_env: str) -> None:
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{store.bucket}/*",
            }
        ],
    }
    # moto, like S3, refuses anonymous reads of a private bucket: public URLs need a public-read policy (or a CDN)
    moto_client(aws_env).put_bucket_policy(Bucket=store.bucket, Policy=json.dumps(public_read))
    stored = store.put("images/PROD-000001.jpg", JPEG_BYTES, content_type=JPEG)
    url = store.url("images/PROD-000001.jpg")
    assert url == f"{aws_env}/{store.bucket}/catalog/v1/images/PROD-000001.jpg" == stored.object.url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == JPEG_BYTES


def test_presigned_urls_state_their_expiry_and_fetch_the_object(s3_bucket: str) -> None:
    store = make_store(s3_bucket, url_style="presigned", presign_expiry_s=900)
    store.put("images/PROD-000001.jpg", JPEG_BYTES, content_type=JPEG)
    url = store.url("images/PROD-000001.jpg")
    assert store.url_expires_in_s == 900
    assert "X-Amz-Expires=900" in url and "X-Amz-Signature=" in url
    assert DUMMY_SECRET_ACCESS_KEY not in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == JPEG_BYTES
    with pytest.raises(StoreError, match="604800"):
        make_store(s3_bucket, url_style="presigned", presign_expiry_s=8 * 24 * 3600)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"public_base_url": "https://img.example.com/"},
        {"url_style": "presigned"},
        {"prefix": ""},
        {"s3": S3Resource(region_name="eu-west-1", endpoint_url="https://s3.eu-west-1.amazonaws.com")},
    ],
    ids=["path-style", "base-url", "presigned", "no-prefix", "virtual-hosted"],
)
def test_key_for_url_maps_every_url_form_back_to_its_key(s3_bucket: str, fields: dict) -> None:
    store = make_store(s3_bucket, **fields)
    for key in ("images/PROD-000001.jpg", "thumbnails/PROD_2-x.jpg", "catalog/linked_catalog.json"):
        assert store.key_for_url(store.url(key)) == key
    url = store.url("images/PROD-000001.jpg")
    assert store.key_for_url(url.replace("PROD-000001", "PROD-000002")) == "images/PROD-000002.jpg"
    for foreign in ("images/PROD-000001.jpg", "https://elsewhere.example/images/PROD-000001.jpg", ""):
        assert store.key_for_url(foreign) is None, foreign
    # where a person finds an object never expires and carries no signature
    assert "X-Amz-" not in store.locate("reports/generation_report.md")
    if store.prefix:  # the same key under another prefix is another object
        assert store.key_for_url(url.replace(f"/{PREFIX}/", "/other/")) is None


# -- one-line errors ----------------------------------------------------------------------------------------


def test_a_missing_bucket_is_named_with_its_setting(aws_env: str) -> None:
    store = make_store("no-such-bucket-here")
    with pytest.raises(StoreError) as at_start:
        store.check()
    assert_one_clear_line(at_start.value, "'no-such-bucket-here'", "does not exist", "CATALOG_S3_BUCKET")
    with pytest.raises(StoreError) as on_put:
        store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)
    assert_one_clear_line(on_put.value, "'no-such-bucket-here'", "PutObject", "CATALOG_S3_BUCKET")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_names_aws_endpoint_url(
    aws_env: str, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = make_store("shop-images", s3=S3Resource(max_attempts=2))
    for attempt in (store.check, lambda: store.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert_one_clear_line(caught.value, "cannot reach", endpoint, "AWS_ENDPOINT_URL")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_endpoint_that_never_answers_times_out_with_a_clear_message(
    aws_env: str, silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    store = make_store("shop-images", s3=S3Resource(max_attempts=1), read_timeout=0.3)
    with pytest.raises(StoreError) as caught:
        store.check()
    assert_one_clear_line(caught.value, silent_endpoint, "did not answer", "AWS_ENDPOINT_URL")


def test_access_denied_names_bucket_operation_and_the_aws_chain(
    s3_bucket: str, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store(s3_bucket).put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG)
    suffix = s3_bucket[-12:]
    no_s3_key, no_s3_secret = create_iam_user(aws_env, f"no-s3-{suffix}")
    allowed = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    s3_key, s3_secret = create_iam_user(aws_env, f"s3-writer-{suffix}", allowed)

    with moto_enforcing_iam(aws_env):
        # control: moto now checks, and a user with S3 rights still gets through
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_secret)
        make_store(s3_bucket).check()

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", no_s3_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", no_s3_secret)
        store = make_store(s3_bucket)
        failures = {}
        for name, attempt in {
            "HeadBucket": store.check,
            "HeadObject": lambda: store.put("images/PROD-2.jpg", JPEG_BYTES, content_type=JPEG),
            "GetObject": lambda: store.get("images/PROD-1.jpg"),
            "ListObjectsV2": lambda: list(store.list()),
        }.items():
            with pytest.raises(StoreError) as caught:
                attempt()
            failures[name] = caught.value

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWNTOMOTO01")
        with pytest.raises(StoreError) as unknown_key:
            list(make_store(s3_bucket).list())  # a HEAD has no body to name the cause, a GET does

    for operation, error in failures.items():
        assert_one_clear_line(error, "access denied", f"'{s3_bucket}'", operation, "AWS chain", "AWS_PROFILE")
        assert no_s3_secret not in str(error) and no_s3_key not in str(error)
    assert_one_clear_line(unknown_key.value, "rejected the credentials", f"'{s3_bucket}'", "AWS chain")
    assert no_s3_secret not in str(unknown_key.value)


def test_no_credentials_at_all_points_at_the_aws_chain(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError) as caught:
        make_store(s3_bucket).check()
    assert_one_clear_line(caught.value, "no usable AWS credentials", "AWS chain")


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "a/b/../../c",
        "/etc/passwd",
        "images//x.jpg",
        "images/./x.jpg",
        "",
        "images/",
        "a\\b",
        "PROD 1.jpg",
        "images/%2e%2e/x",
        "x" * 600,
    ],
)
def test_unsafe_keys_are_refused_before_any_request(s3_proxy: S3Proxy, s3_bucket: str, key: str) -> None:
    store = make_store(s3_bucket)
    s3_proxy.clear()
    for operation in (
        lambda: store.put(key, JPEG_BYTES, content_type=JPEG),
        lambda: store.put(key, JPEG_BYTES, content_type=JPEG, create_only=True),
        lambda: store.head(key),
        lambda: store.get(key),
        lambda: store.url(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(StoreError, match="unsafe object key"):
            operation()
    assert s3_proxy.requests == []


@pytest.mark.parametrize("prefix", ["../escape", "a/../b", "a//b", "a/./b", "a b"])
def test_an_unsafe_prefix_is_refused(prefix: str, aws_env: str) -> None:
    with pytest.raises(StoreError, match="unsafe object key"):
        make_store("shop-images", prefix=prefix)


# -- the Dagster resource -----------------------------------------------------------------------------------


def test_the_resource_reads_its_settings_from_env_vars_at_run_time(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_S3_BUCKET", s3_bucket)
    monkeypatch.setenv("CATALOG_S3_PREFIX", "run/prefix")
    monkeypatch.setenv("CATALOG_PUBLIC_BASE_URL", "https://cdn.example.com")

    @asset
    def stored_image(store: S3ImageStoreResource) -> str:
        client = store.get_client()
        assert isinstance(client, ImageStore)
        client.check()
        return client.put("images/PROD-1.jpg", JPEG_BYTES, content_type=JPEG).object.url

    resource = S3ImageStoreResource(
        bucket=EnvVar("CATALOG_S3_BUCKET"),
        prefix=EnvVar("CATALOG_S3_PREFIX"),
        public_base_url=EnvVar("CATALOG_PUBLIC_BASE_URL"),
        s3=S3Resource(max_attempts=3),
    )
    result = materialize([stored_image], resources={"store": resource})

    assert result.success
    assert result.output_for_node("stored_image") == "https://cdn.example.com/run/prefix/images/PROD-1.jpg"
    secret_like = {name for name in S3ImageStoreResource.model_fields if "secret" in name or "key_id" in name}
    assert secret_like == set()


def test_the_resource_refuses_keys_in_its_config(s3_bucket: str) -> None:
    resource = S3ImageStoreResource(
        bucket=s3_bucket,
        s3=S3Resource(aws_access_key_id="AKIA1", aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY),
    )
    with pytest.raises(StoreError) as caught:
        resource.get_client()
    assert_one_clear_line(caught.value, "AWS chain")
