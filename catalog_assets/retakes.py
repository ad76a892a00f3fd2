"""Closing the review loop: which stored images the next `product_images` run replaces, and how.

An image rejected by the reviewer (its stored review for that very image says not approved) or by a person
(`catalog-images reject`, for the image stored when they rejected it) is retaken with a prompt that
addresses what was found, at most `max_retakes` times per product; after that the product gets the offline
fallback card (`after_retakes="fallback"`) or keeps its image, flagged (`"keep"`). An approved image is never
replaced. Pure: no store, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from catalog_assets.review import retake_suffix

AfterRetakes = Literal["fallback", "keep"]
AFTER_RETAKES: tuple[AfterRetakes, ...] = ("fallback", "keep")


@dataclass(frozen=True)
class RetakeOrder:
    """What the next run does for one product whose stored image was rejected."""

    product_id: str
    #: "retake": generate again with `prompt_for`; "fallback": store the offline card instead
    action: Literal["retake", "fallback"]
    #: the retake this is (1 for the first); for a fallback, the retakes already made
    number: int
    issues: tuple[str, ...]
    #: who rejected: "review" or "person"
    by: str
    reason: str = ""

    def prompt_for(self, prompt: str) -> str:
        """The generation prompt of this retake: the product's prompt plus the fixes (the retake number
        is part of it, so each retake has its own fingerprint)."""
        return f"{prompt}\n{retake_suffix(self.issues, reason=self.reason, number=self.number)}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "action": self.action,
            "number": self.number,
            "issues": list(self.issues),
            "by": self.by,
            "reason": self.reason,
        }


def rejection_of(
    outcome: Mapping[str, Any],
    review: Mapping[str, Any] | None,
    rejection: Mapping[str, Any] | None,
) -> tuple[str, tuple[str, ...], str] | None:
    """(by, issues, reason) when the stored image of this outcome is rejected, else None. A review or a
    person's rejection counts only for the image it was about (same sha256): a retake is judged afresh."""
    sha = outcome.get("sha256")
    if not sha or not outcome.get("key") or outcome.get("outcome") == "failed":
        return None
    if rejection and rejection.get("image_sha256") == sha:
        reason = str(rejection.get("reason") or "")
        return "person", ("other",), reason
    verdict = (review or {}).get("review") if review and review.get("image_sha256") == sha else None
    if isinstance(verdict, Mapping) and not verdict.get("approved", True):
        issues = tuple(str(i) for i in verdict.get("issues") or ()) or ("wrong_object",)
        return "review", issues, ""
    return None


def retake_orders(
    outcomes: Mapping[str, Mapping[str, Any]],
    reviews: Mapping[str, Mapping[str, Any]],
    rejections: Mapping[str, Mapping[str, Any]],
    *,
    max_retakes: int,
    after_retakes: AfterRetakes = "fallback",
) -> dict[str, RetakeOrder]:
    """The orders for the products of one batch (`outcomes`: its last outcome rows by product id)."""
    orders: dict[str, RetakeOrder] = {}
    for pid, outcome in outcomes.items():
        found = rejection_of(outcome, reviews.get(pid), rejections.get(pid))
        if found is None:
            continue
        by, issues, reason = found
        done = int(outcome.get("retakes") or 0)
        if done < max_retakes:
            orders[pid] = RetakeOrder(pid, "retake", done + 1, issues, by, reason)
        elif after_retakes == "fallback" and outcome.get("source") != "fallback":
            orders[pid] = RetakeOrder(pid, "fallback", done, issues, by, reason)
    return orders


ReviewStatus = Literal["approved", "rejected", "rejected_kept", "rejected_by_person", "unreviewed"]


def review_status(
    outcome: Mapping[str, Any],
    review: Mapping[str, Any] | None,
    rejection: Mapping[str, Any] | None,
    *,
    max_retakes: int | None = None,
) -> ReviewStatus:
    """One word for the gallery, manifest and report: is the stored image approved, awaiting its retake, or
    rejected and kept (retakes used up)."""
    found = rejection_of(outcome, review, rejection)
    if found is not None:
        by = found[0]
        exhausted = max_retakes is not None and int(outcome.get("retakes") or 0) >= max_retakes
        if exhausted:
            return "rejected_kept"
        return "rejected_by_person" if by == "person" else "rejected"
    if review and review.get("image_sha256") == outcome.get("sha256"):
        return "approved"
    return "unreviewed"
