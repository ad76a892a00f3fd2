"""How the production resources reach the OpenAI API: one shared `openai.OpenAI` client per resource client,
made on first use, with the SDK's own retries off (every attempt is ours, counted and classified) and an
explicit timeout; the key is held so that no repr, vars() dump or log line shows it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx2
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    import openai


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A response's headers, lower-cased, without cookies: what the shared limiter reads."""
    return {k.lower(): v for k, v in headers.items() if k.lower() != "set-cookie"}


class Secret:
    """Holds the key so that no repr, vars() dump or log line of a client can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'" if self._value else "''"


class SharedSDKClient:
    """Mixin for the OpenAI clients (images, review, embeddings). The class sets `_key` (a `Secret`),
    `base_url` (None: the SDK reads OPENAI_BASE_URL, else api.openai.com), `timeout_s`, `_lock` and
    `_client = None` in its constructor."""

    _key: Secret
    base_url: str | None
    timeout_s: float
    _lock: threading.Lock
    _client: openai.OpenAI | None

    def client(self) -> openai.OpenAI:
        """The shared SDK client (thread-safe), made on first use; `max_retries=0`: every attempt is ours."""
        import openai  # deferred: loading the definitions does not pay the SDK's import

        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(
                    api_key=self._key.reveal(),
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=httpx2.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                )
            return self._client

    def account_bucket(self, *parts: str) -> str:
        """A shared rate-limit bucket name of this account: `openai:<digest>:<parts>`. One account is one key
        at one endpoint: the same key sent to another base URL (a proxy, another provider, the stand-in) has
        its own limits and its own verdict. The digest hashes the key, which never appears in the name."""
        account = f"{self.client().base_url}|{self._key.reveal()}"
        digest = hashlib.sha256(account.encode()).hexdigest()[:16]
        return ":".join(("openai", digest, *parts))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class OpenAIAccountResource(ConfigurableResource):
    """What the OpenAI resources (images, reviews, embeddings) share: the account's key and base URL, and a
    client made on first `get_client()` by `make_client()` and closed after the run's execution. Listed
    first among a resource's bases, so its `get_client` serves the role's base class."""

    api_key: str = Field(
        default="",
        repr=False,
        description="OpenAI API key; pass EnvVar('OPENAI_API_KEY'). Never logged; hashed in bucket names.",
    )
    base_url: str | None = Field(
        default=None,
        description="API base URL (e.g. the local stand-in); None: the SDK reads OPENAI_BASE_URL, else OpenAI.",
    )

    _client: Any = PrivateAttr(default=None)

    def make_client(self) -> Any:
        raise NotImplementedError

    def get_client(self) -> Any:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def teardown_after_execution(self, context: Any) -> None:
        if self._client is not None:
            self._client.close()
