"""Customers: one place decides what a customer receives, in event-time order.

Every stream sends small per-customer signals to ``cx.signals`` keyed by ``customer_id``, so
all of one customer's signals meet in one partition, here. This agent keeps the decaying
frustration score, the failed-login streaks and the notification policy (cooldown, daily cap,
priority, duplicates) per customer, in changelogged stores, and emits what passes to
``cx.notifications`` (as CloudEvents, made by :mod:`streams.envelopes`).

**Event-time order.** A customer's signals come from three streams and several upstream
partitions, whose relative arrival order changes with the fleet, a restart or a catch-up. So
that decisions depend only on the *set* of signals, this agent keeps a **signals watermark** per
owned ``cx.signals`` partition: every input partition sends, after the signals of a message, a
progress record ``(stream, partition, through)`` to every ``cx.signals`` partition
(:class:`streams.pipeline.SignalsProgress`, every ``CXPULSE_SIGNALS_PROGRESS_SECONDS`` of its
event time; an idle partition reports at its worker's watermark). The watermark is the minimum
``through`` over every input partition of every stream (``-inf`` until all have reported). A
signal at or above it is **held** in the customer's changelogged store (:data:`Store.HELD`, with
an in-memory due index rebuilt on recovery), so a crash or a rebalance loses none; when the
watermark passes signals, they are released and processed in ``(ts, customer, kind, source id)``
order: login streaks, frustration score, then the policy on the candidates of each (customer,
ts). The progress map is not checkpointed: after a restart it is re-learnt from the next progress
records (every input partition reports within ``CXPULSE_SIGNALS_PROGRESS_SECONDS`` of its event
time), and until then signals are held, which delays decisions and never changes them; a
checkpoint would save that one interval of waiting at the cost of a write per commit. An input
partition that has *never* reported since the agent started holds the watermark back for at most
``CXPULSE_IDLE_PARTITION_SECONDS`` (wall time, liveness only), so a stream with no traffic at all
cannot stop every ordered notification.

*Arrival order remains* for a signal that arrives below the watermark (its event was late or out
of order in its input partition, came from an idle partition's later events, or from a stream
that started after the never-reported rule left it out): it is processed at once, against
whatever was released before it.

**Transactional types decide at once.** Candidates of ``CXPULSE_IMMEDIATE_NOTIFICATION_TYPES``
(default delivery_delayed, delivery_failed) are decided when they arrive, with duplicate
suppression only (the policy's ``immediate``), so "your parcel is late" never waits for the
slowest input partition; their signals still feed the score in order.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from detectors.customer_signal import CustomerSignal, DueIndex, NotificationCandidate
from detectors.frustration_score import FrustrationScore
from detectors.login_streak import LOGIN, LoginStreaks
from detectors.notification_policy import NotificationPolicy
from schemas import Rejection, Stream
from schemas import cloudevents as ce
from schemas.models import NOTIFICATION_TYPES, NOTIFY_DELIVERY_DELAYED
from streams.deadletters import Source, dead_letter
from streams.envelopes import Envelopes
from streams.event_time import Watermark
from streams.pipeline import PROGRESS, Context, Outputs
from streams.size_budget import SizeBudget
from streams.topics import Store, Topic, topic_names

#: Metric label of each notification type (``cx.notification.repeat_contact`` -> ``repeat_contact``).
NOTIFICATION_SHORT_TYPES = {t: t.rsplit(".", 1)[-1] for t in NOTIFICATION_TYPES}


#: Streams whose input partitions report progress on cx.signals (every input stream).
SIGNAL_STREAMS = tuple(stream.value for stream in Stream)


#: A record the worker sends to a stalled ``cx.signals`` partition (see :meth:`CustomersHandler.stalled`).
TICK = "tick"


def immediate_types(setting: str) -> frozenset[str]:
    """``CXPULSE_IMMEDIATE_NOTIFICATION_TYPES`` (short names) as full notification types."""
    by_short = {short: full for full, short in NOTIFICATION_SHORT_TYPES.items()}
    names = [name.strip() for name in setting.split(",") if name.strip()]
    unknown = [name for name in names if name not in by_short]
    if unknown:
        raise ValueError(f"not notification types: {', '.join(unknown)}")
    return frozenset(by_short[name] for name in names)


def release_order(signal: CustomerSignal) -> tuple[Any, ...]:
    """The order held signals are processed in: a function of the signals alone."""
    return (signal.ts, signal.customer_id, signal.kind, signal.source_id, orjson.dumps(signal.to_dict(),
            option=orjson.OPT_SORT_KEYS))  # fmt: skip


class CustomersHandler:
    """Handles one ``cx.signals`` message: a JSON array of one customer's signals, or a progress record."""

    source = Topic.SIGNALS
    stores = (Store.FRUSTRATION, Store.POLICY, Store.LOGINS, Store.HELD)

    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.source_topic = topic_names(s)[self.source]
        # The arrival clock of cx.signals: kept for the worker's partition bookkeeping
        # (streams/rebalance.py); decisions follow the signals watermark below.
        self.event_clock = Watermark(s.late_grace_seconds, s.idle_partition_seconds)
        self.upstream = {(stream, p) for stream in SIGNAL_STREAMS for p in range(s.partitions)}
        #: per owned cx.signals partition: (stream, input partition) -> through
        self.progress: dict[int, dict[tuple[str, int], float]] = {}
        self.marks: dict[int, float] = {}  # per owned cx.signals partition: its signals watermark
        self._wall = ctx.clock
        self._idle_s = s.idle_partition_seconds
        self._first_progress: dict[int, float] = {}  # per partition: wall time of its first progress record
        self._live: set[int] = set()  # partitions with progress since the last recovery (owned)
        self.held = ctx.store(Store.HELD)  # customer -> {"partition": p, "signals": [signal dicts]}
        self._due: dict[int, DueIndex] = {}  # per partition: customer -> earliest held ts
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
        self.immediate = immediate_types(s.immediate_notification_types)
        self.policy = NotificationPolicy(
            cooldown_s=s.notification_cooldown_seconds,
            daily_cap=s.notification_daily_cap,
            store=ctx.store(Store.POLICY),
            immediate=self.immediate,
        )
        self.envelopes = Envelopes(s.source_id)
        self._next_expiry = float("-inf")
        self._deadletter_limit = SizeBudget.of(s).output_record_bytes
        self.rebuild_held_index()
        self.metrics.signals_partitions_waiting.set_function(self.waiting)

    def handle(
        self, raw: bytes, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        out = Outputs()
        p = partition or 0
        try:
            value = orjson.loads(raw)
            if isinstance(value, dict):
                if value.get("type") == TICK:
                    self._advance(p, out)  # the rule re-checked in this partition's stream context
                    return out
                if value.get("type") != PROGRESS:
                    raise ValueError(f"unknown record type {value.get('type')!r}")
                upstream = (str(value["stream"]), int(value["partition"]))
                through = float(value["through"])
                signals: list[CustomerSignal] = []
            else:
                signals = [CustomerSignal.from_dict(item) for item in value]
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
        if not signals:
            self._progress(p, upstream, through, out)
            return out
        mark = self.marks.get(p, -math.inf)
        immediate: list[NotificationCandidate] = []
        late: list[CustomerSignal] = []
        for signal in signals:
            self.event_clock.observe(signal.ts, partition)
            notification = signal.notification
            if notification is not None and notification.type in self.immediate:
                immediate.append(notification)
                signal = CustomerSignal(signal.kind, signal.customer_id, signal.ts, signal.source_id, signal.detail)
            if signal.ts >= mark:
                self._hold(p, signal)
            else:
                late.append(signal)
        if immediate:
            self._decide(immediate, out, mark)
        if late:  # below the watermark already: the one case still decided in arrival order
            self._process(sorted(late, key=release_order), out, mark)
        self.event_clock.advance()
        return out

    # -- the signals watermark and held signals ------------------------------------------------

    def _progress(self, partition: int, upstream: tuple[str, int], through: float, out: Outputs) -> None:
        if upstream not in self.upstream:
            return  # a stream or partition this fleet does not have (settings differ): ignore
        self._live.add(partition)
        self._first_progress.setdefault(partition, self._wall())
        progress = self.progress.setdefault(partition, {})
        if through <= progress.get(upstream, -math.inf):
            return
        progress[upstream] = through
        self._advance(partition, out)

    def _advance(self, partition: int, out: Outputs) -> None:
        """Move ``partition``'s signals watermark to the least progress and release what it passed."""
        progress = self.progress.get(partition)
        if not progress:
            return
        if len(progress) < len(self.upstream) and not self._never_reported_expired(partition):
            # An input partition that has never reported holds everything back, for at most
            # CXPULSE_IDLE_PARTITION_SECONDS: a stream with no traffic at all must not stop
            # every ordered notification (liveness only; one that reported once always counts).
            return
        mark = min(progress.values())
        if mark <= self.marks.get(partition, -math.inf):
            return
        self.marks[partition] = mark
        self._release(partition, mark, out)
        self._expire(partition)

    def _never_reported_expired(self, partition: int) -> bool:
        first = self._first_progress.get(partition)
        return first is not None and self._wall() - first >= self._idle_s

    def stalled(self) -> list[int]:
        """Partitions whose watermark waits only for input partitions that never reported, past
        the idle time: a ``tick`` record to each lets the agent apply the rule (nothing else would
        if the traffic that carries progress has already drained)."""
        stalled = []
        for partition, progress in self.progress.items():
            waiting = len(progress) < len(self.upstream) and self._never_reported_expired(partition)
            if waiting and min(progress.values()) > self.marks.get(partition, -math.inf):
                stalled.append(partition)
        return stalled

    def waiting(self) -> int:
        """Owned partitions holding signals back for an input partition that never reported: not
        yet left out, or left out and not yet ticked (:meth:`stalled`)."""
        count = 0
        for partition, progress in self.progress.items():
            if partition in self._live and len(progress) < len(self.upstream):
                expired = self._never_reported_expired(partition)
                if not expired or min(progress.values()) > self.marks.get(partition, -math.inf):
                    count += 1
        return count

    def _hold(self, partition: int, signal: CustomerSignal) -> None:
        cid = signal.customer_id
        entry = self.held.get(cid)
        held = list(entry["signals"]) if entry is not None else []
        item = signal.to_dict()
        if item in held:
            return  # delivered again (at-least-once) while still held
        held.append(item)
        self.held[cid] = {"partition": partition, "signals": held}
        self._index(partition).schedule(cid, min(float(h["ts"]) for h in held))

    def _index(self, partition: int) -> DueIndex:
        index = self._due.get(partition)
        if index is None:
            index = self._due[partition] = DueIndex()
        return index

    def _release(self, partition: int, mark: float, out: Outputs) -> None:
        """Process every held signal of ``partition`` below ``mark``, in event-time order."""
        released: list[CustomerSignal] = []
        index = self._index(partition)
        for cid, _ in list(index.pop_due(math.nextafter(mark, -math.inf))):
            entry = self.held.get(cid)
            if entry is None:
                continue
            signals = [CustomerSignal.from_dict(h) for h in entry["signals"]]
            released.extend(sig for sig in signals if sig.ts < mark)
            rest = [h for h in entry["signals"] if float(h["ts"]) >= mark]
            if rest:
                self.held[cid] = {"partition": partition, "signals": rest}
                index.schedule(cid, min(float(h["ts"]) for h in rest))
            else:
                del self.held[cid]
        if released:
            self._process(sorted(released, key=release_order), out, mark)

    def _process(self, signals: list[CustomerSignal], out: Outputs, mark: float) -> None:
        """Apply signals in the given order; the candidates of each (customer, ts) are decided together.

        ``mark`` is the partition's signals watermark. Scores of other customers expire up to the
        signal's time but never past the oldest watermark of the owned partitions: the store holds
        the customers of every owned partition, and one whose partition is behind may still have
        signals held there (dropping it first would depend on which partitions this worker owns).
        """
        expire_to = min(mark, self._safe())
        candidates: list[NotificationCandidate] = []
        group: tuple[str, float] | None = None
        for signal in signals:
            if group is not None and group != (signal.customer_id, signal.ts) and candidates:
                self._decide(candidates, out, mark)
                candidates = []
            group = (signal.customer_id, signal.ts)
            if signal.kind == LOGIN:
                streak = self.logins.observe(signal)
                if streak is None:
                    continue
                self.metrics.failed_login_streaks.inc()
                signal = streak
            crossed = self.scores.observe(signal, now=expire_to)
            if crossed is not None:
                self.metrics.frustration_scores_over_threshold.inc()
                candidates.append(crossed.candidate())
            if signal.notification is not None:
                candidates.append(signal.notification)
        if candidates:
            self._decide(candidates, out, mark)

    def _decide(self, candidates: list[NotificationCandidate], out: Outputs, mark: float) -> None:
        m = self.metrics
        send, suppressed = self.policy.decide(candidates, now=mark)
        for candidate in send:
            m.notifications.labels(NOTIFICATION_SHORT_TYPES[candidate.type]).inc()
            if candidate.type == NOTIFY_DELIVERY_DELAYED:
                m.notification_lead_time.observe(max(0.0, float(candidate.data["lead_time_seconds"])))
            event = self.envelopes.notification(candidate)
            out.add(Topic.NOTIFICATIONS, candidate.customer_id, ce.encode(event), ce.KAFKA_HEADERS)
        for candidate, reason in suppressed:
            m.notifications_suppressed.labels(NOTIFICATION_SHORT_TYPES[candidate.type], reason).inc()

    def _safe(self) -> float:
        """The oldest signals watermark of the partitions owned (reporting since the last recovery)."""
        return min((self.marks.get(p, -math.inf) for p in self._live), default=-math.inf)

    def rebuild_held_index(self) -> None:
        """Re-index the held signals by partition and earliest time (after the store was restored)."""
        self._due.clear()
        for cid, entry in self.held.items():
            self._index(int(entry["partition"])).schedule(cid, min(float(h["ts"]) for h in entry["signals"]))

    def recovered(self) -> None:
        """The tables were recovered after a rebalance: re-index scores and held signals, expire soon."""
        self.scores.rebuild_index()
        self.logins.rebuild_index()
        self.rebuild_held_index()
        # Partitions given away keep their (then stale, so only lower) progress: nothing here
        # trusts it beyond holding back. Only partitions reporting since now hold back expiry.
        self._live.clear()
        self._next_expiry = float("-inf")  # the policy has no index: its next scan runs at once

    def _expire(self, partition: int) -> None:
        # Streaks and the policy expire on the signals watermark: every signal below it has been
        # applied, and a partition (or stream) running ahead cannot drop the state of customers
        # whose signals are still behind it. The watermark is per cx.signals partition; the
        # stores hold the customers of every owned partition, so the oldest one decides.
        safe = self._safe()
        if safe == -math.inf:
            return
        self.logins.advance(safe)
        # The policy's expiry scans its store: once per event-time hour is plenty.
        if safe >= self._next_expiry:
            self._next_expiry = safe + 3600.0
            self.policy.expire(safe)
