"""The per-run budgets: paid images (`max_images`, `max_cost_usd`) and paid reviews (`max_reviews`,
`max_review_cost_usd`), reserved before a call and settled after it, so concurrent workers never together
exceed a count."""

from __future__ import annotations

import threading
from collections.abc import Callable

from catalog_assets.errors import ErrorClass, RunStopped


class _Places:
    """Places held from before a call until it settles. A caller finding no room while places are still in
    flight waits for them (one may give its place back) rather than stopping; it stops only when the settled
    places alone leave none, so the stop's message is true."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._settled = threading.Condition(threading.Lock())

    def _wait_for_room(
        self, refusal: Callable[[], str | None], stopped: threading.Event | None, stopped_message: str
    ) -> None:
        """With the lock held: return once `refusal()` (why there is no room, or None) is None; raise
        RunStopped (class `budget`) with its reason when nothing in flight can give room back, or with
        `stopped_message` when `stopped` is set while waiting."""
        while (why := refusal()) is not None:
            if self.in_flight == 0:
                raise RunStopped(ErrorClass.BUDGET, why)
            if stopped is not None and stopped.is_set():
                raise RunStopped(ErrorClass.BUDGET, stopped_message)
            self._settled.wait(0.25)


class Budget(_Places):
    """Per-run limit on paid images and their estimated cost: reserve before a call, settle after. A call
    that may still fail holds its reservation until it settles."""

    def __init__(self, max_images: int | None, max_cost_usd: float | None, price: float) -> None:
        super().__init__()
        self.max_images, self.max_cost_usd, self.price = max_images, max_cost_usd, price
        self.images = 0
        self.reserved_cost = 0.0
        self.spent = 0.0

    def _refusal(self) -> str | None:
        if self.max_images is not None and self.images + 1 > self.max_images:
            return f"max_images={self.max_images} reached; stopping before more calls"
        if (
            self.max_cost_usd is not None
            and self.spent + self.reserved_cost + self.price > self.max_cost_usd + 1e-9
        ):
            return (
                f"max_cost_usd={self.max_cost_usd:.2f} would be exceeded (spent ${self.spent:.3f}, "
                f"${self.price:.3f} per image); stopping before more calls"
            )
        return None

    def reserve(self, stopped: threading.Event | None = None) -> None:
        """Hold room for one paid image, waiting while calls in flight may still give room back; raises
        RunStopped (class `budget`) once the settled images alone leave none, or when `stopped` is set."""
        with self._settled:
            self._wait_for_room(
                self._refusal, stopped, "run stopped while waiting for calls in flight to settle"
            )
            self.images += 1
            self.in_flight += 1
            self.reserved_cost += self.price

    def settle(self, charged: bool) -> None:
        """Release a reservation: `charged` counts it as spent (an image, or a call that may be billed)."""
        with self._settled:
            self.reserved_cost -= self.price
            self.in_flight -= 1
            if charged:
                self.spent += self.price
            else:
                self.images -= 1
            self._settled.notify_all()


class ReviewBudget(_Places):
    """Per-pass limit on paid reviews (`max_reviews`) and their estimated cost (`max_review_cost_usd`); None:
    no limit. A review holds its place from before its first call until it settles: made (counted, its cost
    spent) or given up (the place given back).

    A review's cost is known only from its answer's token usage, so the cost limit stops new reviews once the
    reviews made cost it; the reviews already in flight then (at most the pass's concurrency) may go past
    it by their own cost."""

    def __init__(self, max_reviews: int | None = None, max_cost_usd: float | None = None) -> None:
        super().__init__()
        self.max_reviews, self.max_cost_usd = max_reviews, max_cost_usd
        self.held = 0  # made plus in flight
        self.spent = 0.0

    def _refusal(self) -> str | None:
        if self.max_reviews is not None and self.held + 1 > self.max_reviews:
            return f"max_reviews={self.max_reviews} reached; stopping before more review calls"
        return None

    def reserve(self, stopped: threading.Event | None = None) -> None:
        """Hold room for one paid review; raises RunStopped (class `budget`) once the reviews made leave
        none, or when `stopped` is set while waiting."""
        with self._settled:
            if self.max_cost_usd is not None and self.spent >= self.max_cost_usd - 1e-12:
                raise RunStopped(
                    ErrorClass.BUDGET,
                    f"max_review_cost_usd={self.max_cost_usd:.4f} reached (spent ${self.spent:.4f}); stopping "
                    "before more review calls",
                )
            self._wait_for_room(
                self._refusal, stopped, "stopped while waiting for reviews in flight to settle"
            )
            self.held += 1
            self.in_flight += 1

    def settle(self, made: bool, cost_usd: float = 0.0) -> None:
        """Release a reservation: `made` keeps its place (a paid review) and spends `cost_usd`."""
        with self._settled:
            self.in_flight -= 1
            if made:
                self.spent += cost_usd
            else:
                self.held -= 1
            self._settled.notify_all()
