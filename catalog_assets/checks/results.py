"""How every check result is told: rates shown alike, problem tables cut to a readable length, the one result
for "a share held to a threshold", and the failed result of a check that could not judge."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
)

from catalog_assets.checks.thresholds import ThresholdError, threshold_metadata
from catalog_assets.util import md_table

#: rows listed in a result's problem table (the counts are always complete)
TABLE_ROWS = 50


def rate(numerator: int, denominator: int) -> float:
    """Exact, for the comparison with the threshold; metadata shows it rounded (`shown`)."""
    return numerator / denominator if denominator else 0.0


def shown(value: float) -> float:
    return round(value, 4)


def pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> MetadataValue:
    listed = list(rows[:TABLE_ROWS])
    more = f"\n\n… and {len(rows) - len(listed)} more" if len(rows) > len(listed) else ""
    return MetadataValue.md(md_table(headers, listed) + more if listed else "none")


def rate_result(
    *,
    check_name: str | None,
    severity: AssetCheckSeverity,
    rate_key: str,
    count: tuple[str, int],
    total: tuple[str, int],
    phrase: str,
    limit_field: str,
    limit: float,
    explanation: str,
    extra: Mapping[str, Any] | None = None,
) -> AssetCheckResult:
    """Passes when count / total is at most `limit`; says "<count> of <total> <phrase> (<rate>; at most
    <limit> tolerated)" and records the rate, both counts, the threshold and its variable."""
    (count_key, counted), (total_key, of) = count, total
    value = rate(counted, of)
    return AssetCheckResult(
        check_name=check_name,
        passed=value <= limit,
        severity=severity,
        description=f"{counted} of {of} {phrase} ({pct(value)}; at most {pct(limit)} tolerated)",
        metadata={
            rate_key: shown(value),
            count_key: counted,
            total_key: of,
            **threshold_metadata(limit_field, limit),
            **(extra or {}),
            "explanation": explanation,
        },
    )


def not_judged(check_name: str | None, error: ThresholdError) -> AssetCheckResult:
    """A check whose thresholds cannot be read has judged nothing: it fails at ERROR (so a blocking one blocks)
    and names the variable to fix."""
    return AssetCheckResult(
        check_name=check_name,
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=f"not judged: bad check setting {error}",
        metadata={
            "threshold_setting": MetadataValue.text(error.variable),
            "explanation": "the check's thresholds could not be read, so it cannot pass; fix or unset the "
            "variable and run the checks again",
        },
    )


def selected(
    context: AssetCheckExecutionContext, asset_key: AssetKey, results: Iterable[AssetCheckResult]
) -> Iterator[AssetCheckResult]:
    """Only the results of the checks this run selected (the UI can execute one check of a multi-check)."""
    chosen = context.selected_asset_check_keys
    for result in results:
        if AssetCheckKey(asset_key, result.check_name) in chosen:
            yield result
