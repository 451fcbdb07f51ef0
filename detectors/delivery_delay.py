"""Per-order delivery tracking: predicted delays, failures, missed promises, on-time outcomes.

:class:`DeliveryDelayMonitor` keeps one plain JSON-able dict per undelivered order in an injectable
``MutableMapping`` (a Faust Table in production, so a restarted worker resumes) and a time-ordered
index of when each order next needs a look. Everything runs in **event time**: ``process(event)``
moves the monitor's clock to the event's ``ts``; ``advance(now)`` re-checks only the orders that
are due, so an idle order costs nothing.

When an order is notified (``DelayPredicted``, once per order and ``promised_by`` value)
---------------------------------------------------------------------------------------------
Before ``promised_by`` passes, at every scan of the order and at re-checks that get denser as
the promise nears (every ``recheck_s`` far from it, a quarter of the time left when closer, at
least ``min_recheck_s`` apart), the :class:`~detectors.transit_model.TransitModel` gives the
probability that the order is delivered after ``promised_by`` given what has (not) happened so
far. The order is notified when

1. that probability is at least ``min_confidence``; an order silent for much longer than its
   carrier-region's usual longest scan gap, or shipped in the same window as several such
   orders (a carrier-region disruption), is predicted with a slower transit; when a disruption
   is found every open order of the carrier-region is re-checked at once; or
2. ``trust_eta`` and the carrier's own ``eta`` is later than ``promised_by + margin_s``.

A new ``promised_by`` (on a later ``created``/``shipped``/scan event) is a new promise and may be
notified again (new id). When ``promised_by`` passes with the order undelivered and never
notified for that promise, ``PromiseMissed`` is emitted once (metric
``cxpulse_delivery_delays_missed_total``). ``failed_attempt``/``exception`` give
``DeliveryFailed``; ``delivered`` gives ``Delivered`` (on time or not) and drops the order from the
store. Undelivered orders are forgotten ``horizon_s`` after their last event.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from detectors.customer_signal import CustomerSignal, DueIndex, NotificationCandidate
from detectors.transit_model import LEG_STATUSES, TransitModel
from schemas.ids import delivery_delayed_id, delivery_failed_id
from schemas.models import NOTIFY_DELIVERY_DELAYED, NOTIFY_DELIVERY_FAILED, DeliveryEvent, rfc3339

HOUR = 3600.0
DAY = 86400.0
MAX_EVENT_IDS = 16
MAX_SNAPSHOTS = 16
MAX_PROMISES = 8

#: What a failed status means and what the customer can do, for ``delivery_failed`` data.
FAILURE_TEXT: dict[str, tuple[str, str]] = {
    "failed_attempt": (
        "The carrier tried to deliver the order but could not complete the delivery.",
        "Choose a new delivery day or a pick-up point in your order tracking page.",
    ),
    "exception": (
        "The carrier reported a problem with the shipment (exception).",
        "No action needed yet: we are checking with the carrier and will update you.",
    ),
}


def _promise_key(promise: float) -> str:
    return f"{promise:.0f}"


@dataclass(frozen=True, slots=True)
class DelayPredicted:
    """An undelivered order is predicted to miss its promise (at event time ``ts``)."""

    order_id: str
    customer_id: str
    carrier: str
    region: str
    promise: float
    predicted_ts: float
    confidence: float
    evidence: tuple[str, ...]
    ts: float

    @property
    def lead_time_s(self) -> float:
        """``promise - ts``: how long before the promise the customer hears about it."""
        return self.promise - self.ts

    @property
    def id(self) -> str:
        """customer + order + promise (:func:`schemas.ids.delivery_delayed_id`)."""
        return delivery_delayed_id(self.customer_id, self.order_id, self.promise)

    def candidate(self) -> NotificationCandidate:
        """The ``cx.notification.delivery_delayed`` it proposes, about the order."""
        return NotificationCandidate(
            type=NOTIFY_DELIVERY_DELAYED,
            id=self.id,
            customer_id=self.customer_id,
            subject=self.order_id,
            time=self.ts,
            data={
                "order_id": self.order_id,
                "customer_id": self.customer_id,
                "carrier": self.carrier,
                "region": self.region,
                "promised_by": rfc3339(self.promise),
                "predicted_delivery": rfc3339(self.predicted_ts),
                "evidence": list(self.evidence),
                "confidence": round(self.confidence, 4),
                "lead_time_seconds": round(self.lead_time_s, 3),
            },
        )

    def to_signal(self) -> CustomerSignal:
        """``delivery_delayed`` signal for ``cx.signals`` carrying the candidate notification."""
        return CustomerSignal("delivery_delayed", self.customer_id, self.ts, self.order_id,
                              {"carrier": self.carrier, "region": self.region}, self.candidate())


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """A ``failed_attempt`` or ``exception`` scan of an order."""

    order_id: str
    customer_id: str
    carrier: str
    region: str
    status: str
    ts: float

    @property
    def id(self) -> str:
        """customer + order + status + event time of the scan (:func:`schemas.ids.delivery_failed_id`)."""
        return delivery_failed_id(self.customer_id, self.order_id, self.status, self.ts)

    def candidate(self) -> NotificationCandidate:
        """The ``cx.notification.delivery_failed`` it proposes, about the order."""
        what, step = FAILURE_TEXT.get(self.status, (f"Delivery status {self.status}.", ""))
        return NotificationCandidate(
            type=NOTIFY_DELIVERY_FAILED, id=self.id, customer_id=self.customer_id,
            subject=self.order_id, time=self.ts,
            data={"order_id": self.order_id, "customer_id": self.customer_id,
                  "carrier": self.carrier, "region": self.region, "status": self.status,
                  "what_happened": what, "next_step": step},
        )

    def to_signal(self) -> CustomerSignal:
        """``delivery_failed`` signal carrying the candidate notification."""
        return CustomerSignal("delivery_failed", self.customer_id, self.ts, self.order_id,
                              {"status": self.status}, self.candidate())


@dataclass(frozen=True, slots=True)
class PromiseMissed:
    """``promised_by`` passed with the order undelivered and not notified for that promise."""

    order_id: str
    customer_id: str
    carrier: str
    region: str
    promise: float
    last_status: str
    ts: float


@dataclass(frozen=True, slots=True)
class Delivered:
    """An order was delivered; ``on_time`` is None when no promise was known."""

    order_id: str
    customer_id: str
    carrier: str
    region: str
    ts: float
    promise: float | None
    on_time: bool | None
    transit_s: float | None
    notified: bool


Finding = DelayPredicted | DeliveryFailed | PromiseMissed | Delivered


class DeliveryDelayMonitor:
    """Event-time delivery monitor (see the module docstring for the rules).

    Parameters
    ----------
    store : MutableMapping[str, dict] or None
        Order id -> JSON-able order state (a Faust Table in production); default a dict.
        Values are always reassigned after a change (as Faust tables require).
    model : TransitModel or None
        The transit model (a fresh one by default).
    margin_s : float
        The carrier ETA must exceed ``promised_by`` by this much (rule 2, default 2 h).
    min_confidence : float
        Minimum probability of lateness for rule 1 (default 0.96). An order is notified when
        its probability first crosses this value, so the share of notified orders that arrive
        on time is somewhat above ``1 - min_confidence``.
    silence_factor : float or None
        Overrides the model's ``silence_factor`` (abnormal silence = this many times the usual
        longest scan gap); None keeps the model's (1.5).
    recheck_s : float
        Longest event-time interval between re-predictions of an open order (default 4 h).
    min_recheck_s : float
        Shortest such interval, used just before the promise (default 10 min).
    horizon_s : float
        Undelivered orders are dropped this long after their last event (default 21 days).
    trust_eta : bool
        Rule 2 on/off (default True).
    partition : int or None
        Judge only the orders of this input partition (their state records it); None: all.
        One monitor per partition, each with its own model, can share one store.
    partition_of : callable or None
        ``(order_id, state) -> partition`` for :meth:`rebuild_index`; default the state's own
        ``partition`` field.

    Examples
    --------
    >>> from schemas.models import DeliveryEvent
    >>> mon = DeliveryDelayMonitor()
    >>> ev = DeliveryEvent("e1", 0.0, "shipped", "o-1", "c-1", "dhl", "north", promised_by=9e4)
    >>> mon.process(ev)
    []
    >>> late = DeliveryEvent("e2", 1e5, "delivered", "o-1", "c-1", "dhl", "north")
    >>> [type(f).__name__ for f in mon.process(late)]
    ['PromiseMissed', 'Delivered']
    >>> len(mon.store)
    0
    """

    def __init__(
        self,
        store: MutableMapping[str, dict[str, Any]] | None = None,
        model: TransitModel | None = None,
        *,
        margin_s: float = 2 * HOUR,
        min_confidence: float = 0.96,
        silence_factor: float | None = None,
        recheck_s: float = 4 * HOUR,
        min_recheck_s: float = 10 * 60.0,
        horizon_s: float = 21 * DAY,
        trust_eta: bool = True,
        partition: int | None = None,
        partition_of: Callable[[str, Mapping[str, Any]], int | None] | None = None,
    ) -> None:
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}
        self.model = model if model is not None else TransitModel()
        self.margin_s = margin_s
        self.min_confidence = min_confidence
        if silence_factor is not None:
            self.model.silence_factor = silence_factor
        self.recheck_s = recheck_s
        self.min_recheck_s = min_recheck_s
        self.horizon_s = horizon_s
        self.trust_eta = trust_eta
        #: The input partition whose orders this monitor judges (None: every order of the store).
        #: Several monitors may share one store, one per partition, each with its own model.
        self.partition = partition
        self._partition_of = partition_of or (lambda _order_id, st: st.get("partition"))
        #: False while re-processing messages the model has already learnt (after a checkpoint
        #: restore): the per-order logic runs, the model does not learn them twice.
        self.learning = True
        self.clock = -math.inf
        self._index = DueIndex()
        self._by_cr: dict[str, set[str]] = {}  # carrier/region -> open order ids (in memory)
        if len(self.store):
            self.rebuild_index()

    # ------------------------------------------------------------------ public API
    def process(self, event: DeliveryEvent) -> list[Finding]:
        """Apply one delivery event; return the findings it causes (in order).

        The order is judged as of the event's own time, after any of its checks that fell
        due before it (its partition may be ahead of the watermark). Only :meth:`advance`
        moves the monitor's clock: with several partitions the caller passes the watermark
        there, so an order is never judged against a partition that ran ahead of its own.
        """
        now = event.ts
        out: list[Finding] = self._catch_up(event.order_id, now)
        st = self.store.get(event.order_id)
        if st is None:
            st = self._new_state(event)
            if self.partition is not None:
                st["partition"] = self.partition
        elif event.event_id in st["events"]:
            return out
        else:
            st = dict(st)
        st["events"] = [*st["events"], event.event_id][-MAX_EVENT_IDS:]
        if event.promised_by is not None:
            st["promised_by"] = event.promised_by
        if event.eta is not None:
            st["eta"] = event.eta
        if event.type == "created":
            st["created"] = event.ts if st.get("created") is None else st["created"]
        if event.type == "shipped" and st.get("shipped") is None:
            st["shipped"] = event.ts
        if event.type in LEG_STATUSES:
            legs = dict(st.get("legs") or {})
            if event.type != "exception" or "exception" not in legs:
                legs[event.type] = event.ts
            st["legs"] = legs
        # a scan after the previous one completes a leg
        if self.learning and st["n_scans"] > 0 and event.ts >= st["last_ts"]:
            self.model.observe_scan(st["carrier"], st["region"], st["last_status"],
                                    st["last_ts"], event.ts, st["n_scans"])
        # promise check as of this event's time, before delivery closes the order
        out.extend(self._check_missed(st, event.ts if event.type == "delivered" else now))
        if event.type == "delivered":
            out.append(self._deliver(st, event))
            self._drop(event.order_id)
            return out
        if event.ts >= st["last_ts"] or st["n_scans"] == 0:
            st["last_ts"], st["last_status"] = event.ts, event.type
        st["n_scans"] += 1
        st["snaps"] = [*st["snaps"], [event.type, event.ts]][-MAX_SNAPSHOTS:]
        if event.type in FAILURE_TEXT:
            out.append(DeliveryFailed(st["order_id"], st["customer_id"], st["carrier"],
                                      st["region"], event.type, event.ts))
        out.extend(self._evaluate(st, now))
        self._save(st, now)
        return out

    def advance(self, now: float) -> list[Finding]:
        """Move event time to ``now``; re-check the orders that are due (earliest first).

        Each order is judged as of its own due time, not as of ``now``: once event time has
        passed the due time, nothing about the order can still arrive before it, so the
        outcome (and the notification's time and lead) does not depend on how far a batch or
        a lagging partition made the clock jump. Replays and live traffic agree.
        """
        self.clock = max(self.clock, now)
        out: list[Finding] = []
        # Up to ``now``, not the clock: after a rebalance a caller may hold back (see Watermark.safe).
        for order_id, due in self._index.pop_due(now):
            out.extend(self._check_due(order_id, due))
        return out

    def _check_due(self, order_id: str, due: float) -> list[Finding]:
        """The scheduled check of one order, as of its due time (unscheduled by the caller)."""
        st = self.store.get(order_id)
        if st is None:
            return []
        st = dict(st)
        if due >= st["last_ts"] + self.horizon_s:
            self._drop(order_id)
            return []
        at = max(due, float(st["last_ts"]))
        out = self._check_missed(st, at) + self._evaluate(st, at)
        self._save(st, at)
        return out

    def _catch_up(self, order_id: str, until: float) -> list[Finding]:
        """Run the checks of ``order_id`` that fell due before ``until`` (the time of its next
        event): its partition may be ahead of the watermark, and the order must be judged as it
        stood at each due time before the new event changes it."""
        out: list[Finding] = []
        for _ in range(64):  # each check schedules the next one strictly later; bound anyway
            due = self._index.due_of(order_id)
            if due is None or due >= until:
                break
            self._index.discard(order_id)
            out.extend(self._check_due(order_id, due))
        return out

    def rebuild_index(self) -> None:
        """Rebuild the due-time index from the store (after recovery or a new assignment).

        With a ``partition``, only the orders of that partition are indexed.
        The clock is left alone: the newest ``last_ts`` over the recovered orders is the newest
        event of *some* partition, and moving the clock there would judge the orders of every
        partition still behind it too early. The caller's watermark moves it.
        """
        self._index.clear()
        self._by_cr.clear()
        for order_id, st in self.store.items():
            if self.partition is not None and self._partition_of(order_id, st) != self.partition:
                continue  # another partition's order: judged by that partition's monitor
            self._index.schedule(order_id, float(st["due"]))
            self._by_cr.setdefault(f"{st['carrier']}/{st['region']}", set()).add(order_id)

    def next_due(self) -> float | None:
        """Earliest event time at which :meth:`advance` has work, or None."""
        return self._index.next_due()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _new_state(e: DeliveryEvent) -> dict[str, Any]:
        return {
            "order_id": e.order_id, "customer_id": e.customer_id, "carrier": e.carrier,
            "region": e.region, "promised_by": None, "eta": None, "created": None,
            "shipped": None, "last_ts": e.ts, "last_status": e.type, "n_scans": 0,
            "snaps": [], "events": [], "notified": [], "missed": [], "due": e.ts, "legs": {},
        }

    def _check_missed(self, st: dict[str, Any], now: float) -> list[Finding]:
        promise = st.get("promised_by")
        if promise is None or now < promise:
            return []
        key = _promise_key(promise)
        if key in st["notified"] or key in st["missed"]:
            return []
        st["missed"] = [*st["missed"], key][-MAX_PROMISES:]
        return [PromiseMissed(st["order_id"], st["customer_id"], st["carrier"], st["region"],
                              float(promise), st["last_status"], float(promise))]

    def _evaluate(self, st: dict[str, Any], now: float) -> list[Finding]:
        promise = st.get("promised_by")
        if promise is None or now >= promise:
            return []
        key = _promise_key(promise)
        if key in st["notified"] or key in st["missed"]:
            return []
        pred = self.model.predict_delivery(st, now, explain=False)
        if pred.abnormal_silence and st.get("shipped") is not None and not st.get("silent"):
            st["silent"] = True
            if self.model.mark_silent(st["carrier"], st["region"], st["order_id"],
                                      float(st["shipped"])):
                self._recheck_region(st["carrier"], st["region"], st["order_id"], now)
        eta = st.get("eta")
        fire = pred.predicted_ts is not None and pred.confidence >= self.min_confidence
        eta_late = self.trust_eta and eta is not None and eta > promise + self.margin_s
        if not (fire or eta_late):
            return []
        pred = self.model.predict_delivery(st, now)
        predicted = pred.predicted_ts if pred.predicted_ts is not None else promise
        if eta_late and eta is not None:
            predicted = max(predicted, float(eta))
        evidence = pred.evidence or (f"predicted delivery after the promise by "
                                     f"{(predicted - promise) / HOUR:.0f} h",)
        confidence = pred.confidence if fire else max(pred.confidence, 0.5)
        st["notified"] = [*st["notified"], key][-MAX_PROMISES:]
        return [DelayPredicted(st["order_id"], st["customer_id"], st["carrier"], st["region"],
                               float(promise), max(predicted, promise), confidence, evidence,
                               now)]

    def _recheck_region(self, carrier: str, region: str, skip: str, now: float) -> None:
        """A disruption was found: every open order of the carrier-region is due now."""
        for order_id in sorted(self._by_cr.get(f"{carrier}/{region}", ())):
            if order_id == skip:
                continue
            due = self._index.due_of(order_id)
            if due is not None and due > now:
                self._index.schedule(order_id, now)

    def _next_due(self, st: dict[str, Any], now: float) -> float:
        due = st["last_ts"] + self.horizon_s
        promise = st.get("promised_by")
        if promise is not None:
            key = _promise_key(promise)
            if key not in st["notified"] and key not in st["missed"]:
                if promise > now:
                    due = min(due, promise)
                    # re-predict more often as the promise nears: the probability of lateness
                    # of an order that has not moved grows fastest just before the promise
                    step = min(self.recheck_s, max(self.min_recheck_s, (promise - now) / 4))
                    due = min(due, now + step)
                    if not st.get("silent"):
                        limit = self.model.silence_limit_s(st["carrier"], st["region"],
                                                           st["last_status"], st["n_scans"])
                        silent_at = st["last_ts"] + self.model.silence_factor * limit + 1.0
                        if math.isfinite(silent_at) and silent_at > now:
                            due = min(due, silent_at)
                else:
                    due = min(due, now)
        return max(due, now + 1e-3) if due <= now else due

    def _save(self, st: dict[str, Any], now: float) -> None:
        st["due"] = self._next_due(st, now)
        self.store[st["order_id"]] = st
        self._index.schedule(st["order_id"], st["due"])
        self._by_cr.setdefault(f"{st['carrier']}/{st['region']}", set()).add(st["order_id"])

    def _drop(self, order_id: str) -> None:
        st = self.store.pop(order_id, None)
        self._index.discard(order_id)
        if st is not None:
            lane = f"{st['carrier']}/{st['region']}"
            open_orders = self._by_cr.get(lane)
            if open_orders is not None:
                open_orders.discard(order_id)
                if not open_orders:  # carrier and region are free text: no empty set stays behind
                    del self._by_cr[lane]

    def _deliver(self, st: dict[str, Any], e: DeliveryEvent) -> Delivered:
        shipped = st.get("shipped")
        if self.learning:
            self.model.observe_delivery(st["carrier"], st["region"], st["snaps"], e.ts, shipped)
        promise = st.get("promised_by")
        on_time = None if promise is None else e.ts <= promise
        notified = promise is not None and _promise_key(promise) in st["notified"]
        transit = e.ts - shipped if shipped is not None else None
        return Delivered(st["order_id"], st["customer_id"], st["carrier"], st["region"], e.ts,
                         promise, on_time, transit, notified)
