"""What the checks tolerate: one dataclass of thresholds, read from `CATALOG_CHECK_*` variables in one place when
a check runs, and the metadata that names the variable behind each figure."""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagster import MetadataValue

ENV_PREFIX = "CATALOG_CHECK_"


class ThresholdError(ValueError):
    """A `CATALOG_CHECK_*` variable whose value is no usable threshold; `variable` names it."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True)
class CheckThresholds:
    """Each field is set by `CATALOG_CHECK_<FIELD>` (e.g. `CATALOG_CHECK_MAX_BATCH_FAILURE_RATE=0.2`), read
    when a check runs: no code change or reload needed."""

    #: share of catalog rows quarantined by validation
    max_quarantine_rate: float = 0.05
    #: share of one batch's products whose last outcome is `failed`, for the worst batch
    max_batch_failure_rate: float = 0.10
    #: share of all products with an outcome whose last outcome is `failed`
    max_failure_rate: float = 0.02
    #: share of stored images that are offline fallback cards
    max_fallback_rate: float = 0.05
    #: share of products refused at least once for content policy (errors_total, or refined)
    max_content_policy_rate: float = 0.10
    #: share of reviewed stored images the review rejects (reviewer or person), retakes pending or kept
    max_review_rejection_rate: float = 0.10
    #: two products' images are near-duplicates at most this many of the 256 dhash bits apart
    near_duplicate_max_bits: int = 16
    #: an image whose pixel standard deviation is below this is blank or a single flat colour
    min_pixel_stddev: float = 4.0
    #: images fetched and decoded at once by the image checks
    image_workers: int = 8

    @staticmethod
    def env_name(field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CheckThresholds":
        """Defaults overridden by the `CATALOG_CHECK_*` variables that are set (the process environment unless
        `env` is given); a bad value raises ThresholdError naming the variable and what it must be."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = cls.env_name(f.name)
            raw = env.get(name, "").strip()
            if not raw:
                continue
            kind = type(f.default)  # int or float
            try:
                value = kind(raw)
            except ValueError:
                raise ThresholdError(
                    name, f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None
            is_rate = f.name.endswith("_rate")
            if not value >= 0 or (is_rate and value > 1):  # nan fails `>= 0` too
                raise ThresholdError(
                    name, f"{name}={raw!r} is out of range ({'0..1' if is_rate else '>= 0'})"
                )
            values[f.name] = value
        if values.get("image_workers") == 0:
            raise ThresholdError(
                cls.env_name("image_workers"), f"{cls.env_name('image_workers')} must be at least 1"
            )
        return cls(**values)


def threshold_metadata(field: str, value: float | int) -> dict[str, Any]:
    """The threshold a figure was held to and the variable that sets it."""
    return {"threshold": value, "threshold_setting": MetadataValue.text(CheckThresholds.env_name(field))}
