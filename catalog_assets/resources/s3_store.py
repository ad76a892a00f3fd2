"""The object store's production form: an S3 bucket (or S3-compatible server) via dagster-aws's `S3Resource`
settings. Writes are checksum-verified and skipped when unchanged; setup mistakes are one-line errors.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    FlexibleChecksumError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)
from dagster_aws.s3 import S3Resource
from pydantic import Field

from catalog_assets.errors import StoreError, TransientStoreError
from catalog_assets.resources.store import (
    CACHE_CONTROL_IMAGES,
    ImageStore,
    ImageStoreResource,
    PutResult,
    StoredObject,
    check_key,
    sha256_hex,
    without_query,
)

UrlStyle = Literal["public", "presigned"]
LONG_CACHE_PREFIXES = ("images/", "thumbnails/", "variants/")
SHA256_METADATA_KEY = "sha256"
MAX_PRESIGN_EXPIRY_S = 7 * 24 * 3600  # SigV4 refuses longer
_METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Printable ASCII without leading/trailing blanks: anything else does not survive the trip through an
# HTTP header unchanged, and a fingerprint that comes back different would make us pay twice.
_METADATA_VALUE = re.compile(r"^([\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?)?$")
_MAX_METADATA_BYTES = 2048  # S3's limit on user metadata (keys plus values)
# The earlier attempt stored PNG content types under .jpg keys; browsers and CDNs trust the header.
_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".avif": "image/avif",
}

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)
_DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "AccountProblem"})
_CORRUPT = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch"}
)
_WRONG_REGION = frozenset(
    {"301", "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_CREDENTIALS_HINT = (
    "credentials come from the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "SSO, or an instance/task role)"
)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_userinfo(url: str | None) -> str:
    """An endpoint URL fit for a message: never the user:password part, if someone put one there."""
    if not url:
        return "<AWS default>"
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _strip_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def checksum_sha256_b64(data: bytes) -> str:
    """The value S3 expects in `ChecksumSHA256` (base64 of the raw digest)."""
    return base64.b64encode(bytes.fromhex(sha256_hex(data))).decode("ascii")


def s3_metadata(metadata: Mapping[str, str] | None, digest: str) -> dict[str, str]:
    """User metadata as S3 stores it: our sha256 plus the caller's pairs, validated so they round-trip."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise StoreError(
                f"metadata key {key!r} is not allowed in S3 user metadata: use lower-case ascii letters, "
                "digits and dashes (e.g. 'prompt-fingerprint')"
            )
        if key == SHA256_METADATA_KEY:
            raise StoreError("metadata key 'sha256' is reserved: the store writes the body's sha256 itself")
        if not isinstance(value, str) or not _METADATA_VALUE.fullmatch(value):
            raise StoreError(
                f"metadata value for {key!r} must be a str of printable ascii without leading/trailing "
                f"blanks, got {_one_line(repr(value), 80)}"
            )
        out[key] = value
    out[SHA256_METADATA_KEY] = digest
    size = sum(len(k) + len(v) for k, v in out.items())
    if size > _MAX_METADATA_BYTES:
        raise StoreError(f"user metadata is {size} bytes; S3 allows {_MAX_METADATA_BYTES}")
    return out


def check_content_type(key: str, content_type: str) -> str:
    """Refuse an image key whose extension says one type and the header another."""
    dot = key.rfind(".")
    expected = _IMAGE_TYPES.get(key[dot:].lower()) if dot >= 0 else None
    if expected and content_type.split(";")[0].strip().lower() != expected:
        raise StoreError(f"content type {content_type!r} does not match key {key!r}: expected {expected!r}")
    return content_type


def _normalize_prefix(prefix: str | None) -> str:
    prefix = (prefix or "").strip("/")
    return check_key(prefix) if prefix else ""


class S3ImageStore(ImageStore):
    """One bucket and key prefix. Keys passed in and out are relative to the prefix."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "",
        public_base_url: str | None = None,
        url_style: UrlStyle = "public",
        presign_expiry_s: int = 3600,
        cache_control: str = CACHE_CONTROL_IMAGES,
        data_cache_control: str = "no-cache",
        long_cache_prefixes: Sequence[str] = LONG_CACHE_PREFIXES,
        list_page_size: int = 1000,
    ) -> None:
        if not bucket:
            raise StoreError("no S3 bucket configured: set CATALOG_S3_BUCKET")
        if url_style not in ("public", "presigned"):
            raise StoreError(f"url_style must be 'public' or 'presigned', got {url_style!r}")
        if url_style == "presigned" and not 0 < presign_expiry_s <= MAX_PRESIGN_EXPIRY_S:
            raise StoreError(f"presign_expiry_s must be between 1 and {MAX_PRESIGN_EXPIRY_S} (7 days)")
        self._client = client
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.url_style: UrlStyle = url_style
        #: seconds a URL from `url()` stays valid; None means it does not expire. State it next to the URLs.
        self.url_expires_in_s: int | None = presign_expiry_s if url_style == "presigned" else None
        self.cache_control = cache_control
        self.data_cache_control = data_cache_control
        self.long_cache_prefixes = tuple(long_cache_prefixes)
        self.list_page_size = list_page_size
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    # -- keys and URLs ----------------------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative_key(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    @property
    def endpoint_url(self) -> str:
        return self._client.meta.endpoint_url

    def _public_url(self, full_key: str) -> str:
        path = quote(full_key)
        if self.public_base_url:
            return f"{self.public_base_url}/{path}"
        endpoint = urlsplit(self.endpoint_url)
        host = endpoint.hostname or ""
        if not host.endswith(".amazonaws.com"):
            # An S3-compatible server (MinIO, moto, Ceph ...) serves path-style under its own endpoint.
            return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{path}"
        region = self._client.meta.region_name or "us-east-1"
        s3_host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
        if "." in self.bucket:
            # A dotted bucket name breaks the wildcard TLS certificate of the virtual-hosted form.
            return f"https://{s3_host}/{self.bucket}/{path}"
        return f"https://{self.bucket}.{s3_host}/{path}"

    def _url(self, full_key: str) -> str:
        if self.url_style == "presigned":
            try:
                return self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": full_key},
                    ExpiresIn=self.url_expires_in_s,
                )
            except BotoCoreError as error:  # signing needs credentials, though no request is made
                raise self._botocore_error("generate_presigned_url", error, full_key) from None
        return self._public_url(full_key)

    def url(self, key: str) -> str:
        return self._url(self._full_key(key))

    def locate(self, key: str) -> str:
        """The public URL; for a presigned store the s3:// address, since a signed URL expires."""
        full_key = self._full_key(key)
        return (
            f"s3://{self.bucket}/{full_key}" if self.url_style == "presigned" else self._public_url(full_key)
        )

    def key_for_url(self, url: str) -> str | None:
        """Keys back from public URLs (base URL, virtual-hosted or path-style) and, in presigned mode, from
        presigned ones: whatever precedes the key in the URL this store makes is the same for every key."""
        bare = without_query(url)
        probe = "k"
        for made in {
            self._public_url(self._full_key(probe)),
            without_query(self._url(self._full_key(probe))),
        }:
            base = made[: -len(probe)]  # ends with the prefix and '/', when there is a prefix
            if bare.startswith(base) and len(bare) > len(base):
                try:
                    return check_key(unquote(bare[len(base) :]))
                except StoreError:
                    return None
        return None

    def _cache_control(self, key: str) -> str:
        return self.cache_control if key.startswith(self.long_cache_prefixes) else self.data_cache_control

    # -- requests ---------------------------------------------------------------------------------------

    def _call(
        self, method: str, full_key: str | None = None, *, passthrough: frozenset[str] = frozenset(), **params
    ):
        """Call one S3 operation; configuration and access problems become a one-line StoreError.

        ClientErrors whose code is in `passthrough` are re-raised for the caller to handle (404 on head ...).
        """
        try:
            return getattr(self._client, method)(Bucket=self.bucket, **params)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in passthrough:
                raise
            raise self._client_error(method, full_key, error, code) from None
        except BotoCoreError as error:
            raise self._botocore_error(method, error, full_key) from None

    def _operation(self, method: str) -> str:
        return self._client.meta.method_to_api_mapping.get(method, method)

    def _client_error(self, method: str, full_key: str | None, error: ClientError, code: str) -> StoreError:
        operation = self._operation(method)
        where = f"s3://{self.bucket}/{full_key}" if full_key else f"s3://{self.bucket}"
        endpoint = _without_userinfo(self.endpoint_url)
        if code in _NO_BUCKET or (code in _NOT_FOUND and method == "head_bucket"):
            return StoreError(
                f"S3 bucket {self.bucket!r} does not exist at {endpoint} ({operation}): create it, or set "
                "CATALOG_S3_BUCKET to an existing bucket"
            )
        if code in _BAD_CREDENTIALS:
            return StoreError(
                f"S3 rejected the credentials for {operation} on bucket {self.bucket!r} ({code}): "
                f"{_CREDENTIALS_HINT}; check or refresh them"
            )
        if code in _DENIED:
            hint = ""
            if method == "head_object":
                hint = " (S3 answers 403 instead of 404 for a missing key when s3:ListBucket is not granted)"
            return StoreError(
                f"access denied to S3 bucket {self.bucket!r} for {operation} on {where} ({code}){hint}: "
                f"{_CREDENTIALS_HINT}; grant that identity s3:ListBucket, s3:GetObject, s3:PutObject and "
                f"s3:DeleteObject on arn:aws:s3:::{self.bucket}/{self.prefix + '/' if self.prefix else ''}*"
            )
        if code in _CORRUPT:
            return StoreError(
                f"S3 rejected {operation} of {where} ({code}): the body did not match its checksum, "
                "so it was corrupted on the way; nothing was stored"
            )
        if code in _WRONG_REGION:
            return StoreError(
                f"S3 bucket {self.bucket!r} is in another region than {self._client.meta.region_name!r} "
                f"({operation}, {code}): set AWS_REGION (or the resource's region_name) to the bucket's region"
            )
        if code == "NotImplemented":
            return StoreError(
                f"the S3 endpoint {endpoint} does not implement {operation} as called (conditional writes "
                "need If-None-Match support): use a newer server or AWS S3"
            )
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        message = _one_line(error.response.get("Error", {}).get("Message", ""), 200)
        after = f" after {retries} retries" if retries else ""
        transient = (isinstance(status, int) and status >= 500) or code in ("SlowDown", "RequestTimeout")
        kind = TransientStoreError if transient else StoreError
        return kind(f"S3 {operation} on {where} failed{after}: HTTP {status} {code}: {message}")

    def _botocore_error(self, method: str, error: BotoCoreError, full_key: str | None = None) -> StoreError:
        operation = self._operation(method)
        endpoint = _without_userinfo(self.endpoint_url)
        if isinstance(error, FlexibleChecksumError):
            return StoreError(
                f"s3://{self.bucket}/{full_key} arrived with bytes that do not match its stored checksum "
                f"({operation}); refusing to use it"
            )
        if isinstance(error, ReadTimeoutError):
            return TransientStoreError(
                f"the S3 endpoint {endpoint} did not answer {operation} in time (read_timeout): check "
                "AWS_ENDPOINT_URL (or the resource's endpoint_url) and the network"
            )
        if isinstance(
            error, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError | SSLError
        ):
            kind = type(error).__name__
            return TransientStoreError(
                f"cannot reach the S3 endpoint {endpoint} for {operation} ({kind}): check AWS_ENDPOINT_URL "
                "(or the resource's endpoint_url; unset means AWS itself) and the network"
            )
        if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return StoreError(
                f"no usable AWS credentials for {operation} on bucket {self.bucket!r} "
                f"({type(error).__name__}): {_CREDENTIALS_HINT}"
            )
        return StoreError(f"S3 {operation} on bucket {self.bucket!r} failed: {_one_line(str(error), 200)}")

    # -- the store interface ----------------------------------------------------------------------------

    def check(self) -> None:
        """Verify at run start that the bucket exists and these credentials may list it (HeadBucket needs
        s3:ListBucket, which head() needs anyway to tell a missing key from a forbidden one)."""
        self._call("head_bucket")

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        create_only: bool = False,
    ) -> PutResult:
        full_key = self._full_key(key)
        check_content_type(key, content_type)
        digest = sha256_hex(data)
        user_metadata = s3_metadata(metadata, digest)
        if not create_only:
            # With create_only the conditional PUT below is the existence check (one request, not two).
            current = self.head(key)
            if current is not None and current.sha256 == digest:
                return PutResult(current, uploaded=False)
        params: dict[str, Any] = {
            "Key": full_key,
            "Body": data,
            "ContentType": content_type,
            "CacheControl": self._cache_control(key),
            "Metadata": user_metadata,
            # S3 recomputes the sha256 of what it received and refuses the PUT (BadDigest) when it differs,
            # so a body corrupted between here and the bucket is never stored.
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": checksum_sha256_b64(data),
        }
        if create_only:
            params["IfNoneMatch"] = "*"
        try:
            response = self._call(
                "put_object",
                full_key,
                passthrough=frozenset({"PreconditionFailed", "ConditionalRequestConflict"}),
                **params,
            )
        except ClientError:
            # Another writer created the key between our head and our put; its object is complete (S3
            # writes are atomic), and create_only means we keep it.
            winner = self.head(key)
            if winner is None:
                raise StoreError(
                    f"s3://{self.bucket}/{full_key}: conditional create refused, but no object found"
                ) from None
            return PutResult(winner, uploaded=False)
        stored = StoredObject(
            key=key,
            size=len(data),
            sha256=digest,
            content_type=content_type,
            metadata={k: v for k, v in user_metadata.items() if k != SHA256_METADATA_KEY},
            etag=_strip_etag(response.get("ETag")),
            url=self._url(full_key),
        )
        return PutResult(stored, uploaded=True)

    def head(self, key: str) -> StoredObject | None:
        full_key = self._full_key(key)
        try:
            response = self._call("head_object", full_key, passthrough=_NOT_FOUND, Key=full_key)
        except ClientError:
            return None
        metadata = dict(response.get("Metadata") or {})
        digest = metadata.pop(SHA256_METADATA_KEY, None)
        return StoredObject(
            key=key,
            size=int(response.get("ContentLength", 0)),
            sha256=digest,
            content_type=response.get("ContentType", ""),
            metadata=metadata,
            etag=_strip_etag(response.get("ETag")),
            url=self._url(full_key),
        )

    def get(self, key: str) -> bytes:
        full_key = self._full_key(key)
        try:
            response = self._call("get_object", full_key, passthrough=_NOT_FOUND, Key=full_key)
        except ClientError:
            raise KeyError(key) from None
        try:
            # botocore also checks the body against the checksum S3 stored with it, when there is one
            data = response["Body"].read()
        except BotoCoreError as error:
            raise self._botocore_error("get_object", error, full_key) from None
        expected = (response.get("Metadata") or {}).get(SHA256_METADATA_KEY)
        if expected and sha256_hex(data) != expected:
            raise StoreError(
                f"s3://{self.bucket}/{full_key} does not match its sha256 metadata; refusing to use it"
            )
        return data

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        if prefix:
            check_key(prefix.rstrip("/"))
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        found: list[StoredObject] = []
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    full_key = item["Key"]
                    if full_key.endswith("/"):  # a console's "folder" marker, not an object of ours
                        continue
                    found.append(
                        StoredObject(
                            key=self._relative_key(full_key),
                            size=int(item.get("Size", 0)),
                            sha256=None,
                            content_type="",
                            etag=_strip_etag(item.get("ETag")),
                            url=self._url(full_key),
                        )
                    )
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            raise self._client_error("list_objects_v2", full_prefix or None, error, code) from None
        except BotoCoreError as error:
            raise self._botocore_error("list_objects_v2", error) from None
        # S3 lists general-purpose buckets in key order, but directory buckets and some compatible servers
        # do not; the interface promises sorted keys.
        yield from sorted(found, key=lambda obj: obj.key)

    def delete(self, key: str) -> None:
        full_key = self._full_key(key)
        self._call("delete_object", full_key, Key=full_key)


class S3ImageStoreResource(ImageStoreResource):
    """Production store: an S3 bucket. Connection settings come from dagster-aws's `S3Resource`;
    credentials only from the standard AWS chain, never from this config."""

    bucket: str = Field(
        description="Bucket holding images, thumbnails, manifests and run state (CATALOG_S3_BUCKET)."
    )
    prefix: str = Field(
        default="",
        description="Key prefix under which every object lives, e.g. 'catalog/v1' (CATALOG_S3_PREFIX); empty "
        "for the bucket root.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL the bucket root is served under, e.g. a CDN (CATALOG_PUBLIC_BASE_URL). Unset: the "
        "bucket's virtual-hosted-style HTTPS URL (path-style under a custom S3-compatible endpoint).",
    )
    url_style: UrlStyle = Field(
        default="public",
        description="'public': durable URLs from public_base_url or the bucket. 'presigned': expiring signed "
        "URLs (presign_expiry_s) for private buckets; expiring links break a catalog, so choose it knowingly.",
    )
    presign_expiry_s: int = Field(
        default=3600,
        description="Lifetime of presigned URLs in seconds, at most 604800 (7 days) and never longer than the "
        "credentials that sign them. Only with url_style='presigned'.",
    )
    cache_control: str = Field(
        default=CACHE_CONTROL_IMAGES,
        description="Cache-Control of the objects under long_cache_prefixes (the product images).",
    )
    long_cache_prefixes: list[str] = Field(
        default=list(LONG_CACHE_PREFIXES),
        description="Key prefixes, relative to prefix, whose objects get cache_control.",
    )
    data_cache_control: str = Field(
        default="no-cache",
        description="Cache-Control of every other object (manifests, latest.json, linked catalog, report, "
        "contact sheet, run state), which change under the same key.",
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard",
        description="botocore retry mode for throttling (SlowDown, 429) and 5xx; 'adaptive' also rate-limits "
        "the client. Attempts come from s3.max_attempts.",
    )
    connect_timeout: float = Field(default=10.0, description="Seconds to wait for a connection to S3.")
    read_timeout: float = Field(default=60.0, description="Seconds to wait for S3 to answer a request.")
    max_pool_connections: int = Field(
        default=32, description="HTTP connections kept to S3; at least the number of concurrent uploads."
    )
    s3: S3Resource | None = Field(
        default=None,
        description="dagster-aws S3Resource with the connection settings (region_name, endpoint_url, "
        "max_attempts, profile_name, use_ssl, verify). Unset: its defaults, i.e. region, endpoint "
        "(AWS_ENDPOINT_URL) and credentials from the standard AWS chain. Its aws_* key fields must stay unset.",
    )

    def get_client(self) -> S3ImageStore:
        """A store over a fresh boto3 client (thread-safe: share it across a step's uploads)."""
        return S3ImageStore(
            self.boto3_client(),
            self.bucket,
            prefix=self.prefix,
            public_base_url=self.public_base_url or None,
            url_style=self.url_style,
            presign_expiry_s=self.presign_expiry_s,
            cache_control=self.cache_control,
            data_cache_control=self.data_cache_control,
            long_cache_prefixes=self.long_cache_prefixes,
        )

    def boto3_client(self) -> Any:
        s3 = self.s3 or S3Resource()
        if s3.aws_access_key_id or s3.aws_secret_access_key or s3.aws_session_token:
            raise StoreError(
                "S3ImageStoreResource takes no keys in its config: "
                f"{_CREDENTIALS_HINT}; leave the S3Resource aws_* fields unset"
            )
        config = Config(
            # total_max_attempts counts the first call, as S3Resource.max_attempts is documented; botocore's
            # "max_attempts" key counts retries only (dagster-aws passes it there, making one call more).
            retries={"mode": self.retry_mode, "total_max_attempts": s3.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            # SigV4 for presigned URLs too (boto3 would sign those with SigV2 in some regions).
            signature_version=UNSIGNED if s3.use_unsigned_session else "s3v4",
        )
        try:
            session = boto3.session.Session(profile_name=s3.profile_name)
        except ProfileNotFound as error:
            profile = error.kwargs.get("profile", s3.profile_name)
            raise StoreError(
                f"AWS profile {profile!r} is not in the AWS config files: fix AWS_PROFILE or the S3Resource's "
                "profile_name"
            ) from None
        # endpoint_url=None lets boto3 read AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 itself.
        return session.client(
            "s3",
            region_name=s3.region_name,
            endpoint_url=s3.endpoint_url,
            use_ssl=s3.use_ssl,
            verify=s3.verify,
            config=config,
        )
