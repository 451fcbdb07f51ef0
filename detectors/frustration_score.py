"""Per-customer frustration score with exponential decay in event time.

``score(t) = sum_i weight_i * 0.5 ** ((t - t_i) / half_life_s)`` over the customer's signals.
Weights (:data:`DEFAULT_WEIGHTS`): rage_click 3, error_click 2, dead_click 1, failed_login_streak
3, complaint 4, detractor 5, delivery_delayed 3, delivery_failed 4, repeat_contact 3; unknown kinds
weigh 0. Half-life 6 h, threshold 8. Crossing the threshold upwards starts an *episode* and emits
one :class:`FrustrationCrossed` (``cx.notification.frustration_outreach`` candidate, id from
customer + episode start); the episode ends when the score decays below ``reset_ratio *
threshold``. Customers whose score decayed below ``epsilon`` are dropped (ordered expiry). A signal
delivered again (same kind, time and source, among the customer's last :data:`MAX_SIGNALS`) counts once.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from detectors.customer_signal import CustomerSignal, DueIndex, NotificationCandidate
from schemas.ids import frustration_outreach_id
from schemas.models import NOTIFY_FRUSTRATION_OUTREACH, rfc3339

__all__ = ["DEFAULT_WEIGHTS", "CustomerSignal", "FrustrationCrossed", "FrustrationScore"]

DEFAULT_WEIGHTS: dict[str, float] = {
    "rage_click": 3.0,
    "error_click": 2.0,
    "dead_click": 1.0,
    "failed_login_streak": 3.0,
    "complaint": 4.0,
    "detractor": 5.0,
    "delivery_delayed": 3.0,
    "delivery_failed": 4.0,
    "repeat_contact": 3.0,
}
MAX_SIGNALS = 10


@dataclass(frozen=True, slots=True)
class FrustrationCrossed:
    """The score crossed the threshold; ``signals`` are ``(kind, ts, source_id)``."""

    customer_id: str
    score: float
    episode_start: float
    signals: tuple[tuple[str, float, str], ...]

    @property
    def id(self) -> str:
        """customer + episode start (:func:`schemas.ids.frustration_outreach_id`)."""
        return frustration_outreach_id(self.customer_id, self.episode_start)

    def candidate(self) -> NotificationCandidate:
        """The ``cx.notification.frustration_outreach`` it proposes; no subject: customer ids stay out of context."""
        return NotificationCandidate(
            type=NOTIFY_FRUSTRATION_OUTREACH, id=self.id, customer_id=self.customer_id,
            subject=None, time=self.episode_start,
            data={"customer_id": self.customer_id, "score": round(self.score, 4),
                  "signals": [{"kind": k, "time": rfc3339(t), "source_id": s}
                              for k, t, s in self.signals]},
        )


class FrustrationScore:
    """Decaying per-customer score; emits once per episode when it crosses ``threshold``.

    Parameters
    ----------
    half_life_s : float
        Half-life of a signal's contribution (default 6 h).
    threshold : float
        Score that starts an episode (default 8).
    weights : dict or None
        Weight per signal kind (default :data:`DEFAULT_WEIGHTS`).
    reset_ratio : float
        The episode ends when the score falls below ``reset_ratio * threshold`` (default 0.5).
    epsilon : float
        Customers with a score below this are forgotten (default 0.05).
    store : MutableMapping or None
        customer_id -> ``{"score", "ts", "episode", "signals"}`` (JSON-able).

    Examples
    --------
    >>> fs = FrustrationScore()
    >>> fs.observe(CustomerSignal("complaint", "c-1", 0.0, "k1")) is None
    True
    >>> hit = fs.observe(CustomerSignal("detractor", "c-1", 3600.0, "k1"))
    >>> round(hit.score, 3), hit.episode_start
    (8.564, 3600.0)
    >>> round(fs.score("c-1", 3600.0 + 6 * 3600), 3)
    4.282
    """

    def __init__(self, half_life_s: float = 6 * 3600.0, threshold: float = 8.0,
                 weights: dict[str, float] | None = None, reset_ratio: float = 0.5,
                 epsilon: float = 0.05,
                 store: MutableMapping[str, dict[str, Any]] | None = None) -> None:
        self.half_life_s = half_life_s
        self.threshold = threshold
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.reset_ratio = reset_ratio
        self.epsilon = epsilon
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}
        self._index = DueIndex()
        self.rebuild_index()

    def rebuild_index(self) -> None:
        """Re-index the store's customers by drop time (after the store was restored or changed hands)."""
        self._index.clear()
        for cid, st in self.store.items():
            self._index.schedule(cid, self._drop_at(st))

    def _decay(self, dt: float) -> float:
        return float(0.5 ** (dt / self.half_life_s))

    def _drop_at(self, st: dict[str, Any]) -> float:
        s = float(st["score"])
        if s <= self.epsilon:
            return float(st["ts"])
        return float(st["ts"]) + self.half_life_s * math.log2(s / self.epsilon)

    def score(self, customer_id: str, now: float) -> float:
        """Current score of a customer at event time ``now`` (0 if unknown)."""
        st = self.store.get(customer_id)
        if st is None:
            return 0.0
        return float(st["score"]) * self._decay(max(now - float(st["ts"]), 0.0))

    def observe(self, signal: CustomerSignal, now: float | None = None) -> FrustrationCrossed | None:
        """Add a signal; return the crossing if this signal starts an episode.

        Other customers decayed below ``epsilon`` are forgotten first, up to the signal's time
        or, when given, the caller's watermark ``now`` if earlier: a signal from a partition
        running ahead must not drop the score of a customer whose signals are still behind.
        """
        self.advance(signal.ts if now is None else min(now, signal.ts))
        w = self.weights.get(signal.kind, 0.0)
        st = dict(self.store.get(signal.customer_id) or
                  {"score": 0.0, "ts": signal.ts, "episode": None, "signals": []})
        if w > 0 and [signal.kind, signal.ts, signal.source_id] in st["signals"]:
            return None  # delivered again (at-least-once, after a restart): already counted
        if signal.ts >= st["ts"]:
            st["score"] = float(st["score"]) * self._decay(signal.ts - st["ts"]) + w
            st["ts"] = signal.ts
        else:  # late signal: add its decayed contribution at the current reference time
            st["score"] = float(st["score"]) + w * self._decay(st["ts"] - signal.ts)
        if w > 0:
            sigs = [*st["signals"], [signal.kind, signal.ts, signal.source_id]]
            st["signals"] = sorted(sigs, key=lambda s: (s[1], s[0], s[2]))[-MAX_SIGNALS:]
        out = None
        if st["episode"] is not None and st["score"] < self.reset_ratio * self.threshold:
            st["episode"] = None
        if st["episode"] is None and st["score"] >= self.threshold:
            st["episode"] = st["ts"]
            out = FrustrationCrossed(signal.customer_id, float(st["score"]), float(st["ts"]),
                                     tuple((str(k), float(t), str(s))
                                           for k, t, s in st["signals"]))
        self.store[signal.customer_id] = st
        self._index.schedule(signal.customer_id, self._drop_at(st))
        return out

    def advance(self, now: float) -> None:
        """Forget customers whose score decayed below ``epsilon`` by event time ``now``."""
        for cid, _ in list(self._index.pop_due(now)):
            self.store.pop(cid, None)
