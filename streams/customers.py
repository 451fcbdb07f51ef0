"""Customers: one place decides what a customer receives.

Every stream sends small per-customer signals to ``cx.signals`` keyed by ``customer_id``, so
all of one customer's signals meet in one partition, here. This agent keeps the decaying
frustration score and the notification policy (cooldown, daily cap, priority, duplicates)
per customer, both in changelogged stores, and emits what passes to ``cx.notifications``
(as CloudEvents, made by :mod:`streams.envelopes`).
"""

from __future__ import annotations

import orjson

from detectors.customer_signal import CustomerSignal, NotificationCandidate
from detectors.frustration_score import FrustrationScore
from detectors.login_streak import LOGIN, LoginStreaks
from detectors.notification_policy import NotificationPolicy
from schemas import Rejection
from schemas import cloudevents as ce
from schemas.models import NOTIFICATION_TYPES, NOTIFY_DELIVERY_DELAYED
from streams.deadletters import Source, dead_letter
from streams.envelopes import Envelopes
from streams.event_time import Watermark
from streams.pipeline import Context, Outputs
from streams.size_budget import SizeBudget
from streams.topics import Store, Topic, topic_names

#: Metric label of each notification type (``cx.notification.repeat_contact`` -> ``repeat_contact``).
NOTIFICATION_SHORT_TYPES = {t: t.rsplit(".", 1)[-1] for t in NOTIFICATION_TYPES}


class CustomersHandler:
    """Handles one ``cx.signals`` message: a JSON array of one customer's signals."""

    source = Topic.SIGNALS
    stores = (Store.FRUSTRATION, Store.POLICY, Store.LOGINS)

    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.source_topic = topic_names(s)[self.source]
        self.event_clock = Watermark(s.late_grace_seconds, s.idle_partition_seconds)
        self.scores = FrustrationScore(
            half_life_s=s.frustration_half_life_seconds,
            threshold=s.frustration_threshold,
            store=ctx.store(Store.FRUSTRATION),
        )
        # Failed-login streaks per customer: the customer's sessions sit on several clickstream
        # partitions, so only the customer's owner sees all of their logins.
        self.logins = LoginStreaks(
            s.failed_login_threshold, s.failed_login_window_seconds, store=ctx.store(Store.LOGINS)
        )
        self.policy = NotificationPolicy(
            cooldown_s=s.notification_cooldown_seconds,
            daily_cap=s.notification_daily_cap,
            store=ctx.store(Store.POLICY),
        )
        self.envelopes = Envelopes(s.source_id)
        self._next_expiry = float("-inf")
        self._deadletter_limit = SizeBudget.of(s).output_record_bytes

    def handle(
        self, raw: bytes, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        out = Outputs()
        try:
            signals = [CustomerSignal.from_dict(item) for item in orjson.loads(raw)]
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            # Internal topic: a bad record is our bug or a foreign producer; keep it visible,
            # through the same dead-letter path, reasons and provenance headers as the inputs.
            reason = "invalid_json" if isinstance(exc, orjson.JSONDecodeError) else "schema_violation"
            rejection = Rejection(reason, f"not a list of customer signals: {exc}", raw)
            source = Source("signals", self.source_topic, key, raw, partition, offset)
            letter = dead_letter(rejection, source, self._deadletter_limit)
            self.metrics.events_rejected.labels("signals", letter.reason).inc()
            self.metrics.deadletters.labels("signals").inc()
            out.add_dead_letter(letter)
            return out
        candidates: list[NotificationCandidate] = []
        for signal in signals:
            self.event_clock.observe(signal.ts, partition)
            if signal.kind == LOGIN:
                streak = self.logins.observe(signal)
                if streak is None:
                    continue
                self.metrics.failed_login_streaks.inc()
                signal = streak
            crossed = self.scores.observe(signal, now=self.event_clock.safe)
            if crossed is not None:
                self.metrics.frustration_scores_over_threshold.inc()
                candidates.append(crossed.candidate())
            if signal.notification is not None:
                candidates.append(signal.notification)
        if candidates:
            self._decide(candidates, out)
        self._expire()
        return out

    def _decide(self, candidates: list[NotificationCandidate], out: Outputs) -> None:
        m = self.metrics
        send, suppressed = self.policy.decide(candidates)
        for candidate in send:
            m.notifications.labels(NOTIFICATION_SHORT_TYPES[candidate.type]).inc()
            if candidate.type == NOTIFY_DELIVERY_DELAYED:
                m.notification_lead_time.observe(max(0.0, float(candidate.data["lead_time_seconds"])))
            event = self.envelopes.notification(candidate)
            out.add(Topic.NOTIFICATIONS, candidate.customer_id, ce.encode(event), ce.KAFKA_HEADERS)
        for candidate, reason in suppressed:
            m.notifications_suppressed.labels(NOTIFICATION_SHORT_TYPES[candidate.type], reason).inc()

    def recovered(self) -> None:
        """The tables were recovered after a rebalance: re-index the scores, expire soon."""
        self.scores.rebuild_index()
        self.logins.rebuild_index()
        self._next_expiry = float("-inf")  # the policy has no index: its next scan runs at once

    def _expire(self) -> None:
        now = self.event_clock.advance()
        # Scores and login streaks expire on the safe watermark of cx.signals, never on the time of
        # the signal at hand: a signals partition (or stream) running ahead must not drop the state
        # of customers whose signals are still behind it. Their indexes make this free when idle.
        safe = self.event_clock.safe
        self.logins.advance(safe)
        # The policy's expiry scans its store: once per event-time hour is plenty.
        if now != float("-inf") and now >= self._next_expiry:
            self._next_expiry = now + 3600.0
            self.policy.expire(self.event_clock.safe)  # see DeliveriesHandler.on_clock
