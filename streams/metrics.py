"""Every Prometheus metric cxpulse exports, in one place.

Conventions: prefix ``cxpulse_``, base units (seconds, ratios 0-1), counters end in
``_total``, labels bounded (pages are route templates capped by :mod:`streams.labels`;
never customer, session, contact or order ids). The registry is injectable so tests build a
fresh :class:`~prometheus_client.CollectorRegistry` and read values with
``registry.get_sample_value``.

Rolling gauges (``*_rolling*``) are this worker's view over the last
``CXPULSE_WINDOW_SECONDS`` of event time of the partitions it owns. For a fleet-wide figure
use the counters (``rate()`` over ``*_sum`` / ``*_count`` or the outcome counters), which the
recording rules in ``deploy/prometheus/rules/`` do.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, disable_created_metrics

# `*_created` series double the exposition and no board or rule reads them.
disable_created_metrics()

RESOLUTION_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LEAD_TIME_BUCKETS = (0, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 96 * 3600)


class Metrics:
    """The metric families of one worker, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Registered before every metric, so each collection adds the tallies to the counters
        # before it reads them (a registry collects in registration order).
        self.tallies = TallyBook()
        r.register(self.tallies)

        # --- pipeline ------------------------------------------------------------------
        self.events = Counter("cxpulse_events", "Accepted input events.", ["stream", "type"], registry=r)
        self.events_rejected = Counter(
            "cxpulse_events_rejected",
            "Rejected input (sent to the dead-letter topic).",
            ["stream", "reason"],
            registry=r,
        )
        self.events_late = Counter(
            "cxpulse_events_late",
            "Events older than the stream's event-time clock minus the grace period.",
            ["stream"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "cxpulse_events_duplicate",
            "Events whose event_id was already seen within the dedup horizon.",
            ["stream"],
            registry=r,
        )
        self.messages = Counter(
            "cxpulse_messages", "Input Kafka messages handled (one may carry a batch).", ["stream"], registry=r
        )
        self.deadletters = Counter(
            "cxpulse_deadletters", "Records written to the dead-letter topic.", ["stream"], registry=r
        )
        self.output_send_failures = Counter(
            "cxpulse_output_send_failures",
            "Output records the producer could not send (each is retried, truncated or dead-lettered; see the log).",
            ["topic"],
            registry=r,
        )
        self.event_time = Gauge(
            "cxpulse_event_time_seconds",
            "Event-time clock (newest event ts seen) per stream, Unix seconds.",
            ["stream"],
            registry=r,
        )
        self.event_delay = Histogram(
            "cxpulse_event_delay_seconds",
            "Processing time minus event time at the worker (meaningful for live traffic).",
            ["stream"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "cxpulse_consumer_lag_messages",
            "Messages behind the partition's end offset.",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "cxpulse_assigned_partitions", "Input partitions assigned to this worker.", ["topic"], registry=r
        )
        self.kafka_connected = Gauge(
            "cxpulse_kafka_connected",
            "1 when this worker's last probe of the Kafka cluster (a metadata request) was answered, else 0.",
            registry=r,
        )

        # --- clickstream -----------------------------------------------------------------
        self.page_views = Counter("cxpulse_page_views", "Page views by route template.", ["page"], registry=r)
        self.client_errors = Counter(
            "cxpulse_client_errors", "Client-side errors by route template.", ["page"], registry=r
        )
        self.clicks = Counter("cxpulse_clicks", "Clicks by route template.", ["page"], registry=r)
        self.sessions_started = Counter("cxpulse_sessions_started", "Sessions seen for the first time.", registry=r)
        self.active_sessions = Gauge(
            "cxpulse_active_sessions", "Sessions with an event within the session timeout (event time).", registry=r
        )
        self.logins = Counter("cxpulse_logins", "Login attempts by outcome.", ["outcome"], registry=r)
        self.rage_clicks = Counter("cxpulse_rage_clicks", "Rage-click bursts by route template.", ["page"], registry=r)
        self.error_clicks = Counter(
            "cxpulse_error_clicks", "Clicks followed by a client error within 1 s.", ["page"], registry=r
        )
        self.dead_clicks = Counter(
            "cxpulse_dead_clicks", "Clicks the SDK marked as having no response.", ["page"], registry=r
        )
        self.failed_login_streaks = Counter(
            "cxpulse_failed_login_streaks", "Streaks of 3+ failed logins within 5 minutes.", registry=r
        )
        self.client_error_rolling_ratio = Gauge(
            "cxpulse_client_error_rolling_ratio", "Client errors per page view over the rolling window.", registry=r
        )

        # --- contacts ----------------------------------------------------------------------
        self.contacts_opened = Counter("cxpulse_contacts_opened", "Contacts opened.", ["channel", "reason"], registry=r)
        self.complaints = Counter(
            "cxpulse_complaints", "Contacts flagged as complaints.", ["reason", "channel"], registry=r
        )
        self.contacts_resolved = Counter(
            "cxpulse_contacts_resolved",
            "Contacts resolved, by first-contact resolution.",
            ["first_contact_resolution"],
            registry=r,
        )
        self.resolution_time = Histogram(
            "cxpulse_resolution_time_seconds",
            "Time from contact_opened to contact_resolved (event time).",
            ["channel"],
            buckets=RESOLUTION_BUCKETS,
            registry=r,
        )
        self.csat = Summary("cxpulse_csat_score", "CSAT answers (1-5): _sum/_count give the mean.", registry=r)
        self.ces = Summary("cxpulse_ces_score", "CES answers (1-7): _sum/_count give the mean.", registry=r)
        self.nps_responses = Counter(
            "cxpulse_nps_responses",
            "NPS answers by category (promoter 9-10, passive 7-8, detractor 0-6).",
            ["category"],
            registry=r,
        )
        self.csat_rolling = Gauge("cxpulse_csat_rolling_score", "Mean CSAT over the rolling window (1-5).", registry=r)
        self.ces_rolling = Gauge("cxpulse_ces_rolling_score", "Mean CES over the rolling window (1-7).", registry=r)
        self.nps_rolling = Gauge(
            "cxpulse_nps_rolling_score",
            "NPS over the rolling window: % promoters minus % detractors (-100..100).",
            registry=r,
        )
        self.fcr_rolling = Gauge(
            "cxpulse_fcr_rolling_ratio", "First-contact resolution ratio over the rolling window (0-1).", registry=r
        )

        # --- deliveries --------------------------------------------------------------------
        self.delivery_status = Counter(
            "cxpulse_delivery_status", "Delivery status events.", ["status", "carrier", "region"], registry=r
        )
        self.deliveries = Counter(
            "cxpulse_deliveries",
            "Delivered orders by outcome against promised_by.",
            ["carrier", "region", "outcome"],
            registry=r,
        )
        self.failed_attempts = Counter(
            "cxpulse_failed_delivery_attempts", "Failed delivery attempts.", ["carrier", "region"], registry=r
        )
        self.delivery_exceptions = Counter(
            "cxpulse_delivery_exceptions", "Delivery exceptions.", ["carrier", "region"], registry=r
        )
        self.on_time_rolling = Gauge(
            "cxpulse_on_time_rolling_ratio",
            "On-time delivery ratio over the rolling window (0-1).",
            ["carrier", "region"],
            registry=r,
        )
        self.orders_open = Gauge("cxpulse_orders_open", "Orders tracked and not yet delivered.", registry=r)

        # --- detectors and alerts ------------------------------------------------------------
        self.anomaly_score = Gauge(
            "cxpulse_anomaly_score",
            "Latest anomaly score (0-1) of a watched series.",
            ["detector", "series"],
            registry=r,
        )
        self.alerts = Counter("cxpulse_alerts", "Anomaly alerts raised (one per episode).", ["type"], registry=r)
        self.alerts_resolved = Counter("cxpulse_alerts_resolved", "Anomaly episodes that ended.", ["type"], registry=r)
        self.alerts_active = Gauge("cxpulse_alerts_active", "Anomaly episodes currently open.", ["type"], registry=r)
        self.series_late_partials = Counter(
            "cxpulse_series_late_partials",
            "Series partials that reached their owner after the step had closed (dropped).",
            ["stream"],
            registry=r,
        )
        self.series_late_events = Counter(
            "cxpulse_series_late_events",
            "Series observations left out upstream: their input partition had already emitted the "
            "step (late by more than the grace, or reported as idle at the watermark meanwhile).",
            ["stream"],
            registry=r,
        )

        # --- notifications -------------------------------------------------------------------
        self.notifications = Counter("cxpulse_notifications", "Proactive notifications sent.", ["type"], registry=r)
        self.signals_progress_pending = Gauge(
            "cxpulse_signals_progress_pending",
            "Input partitions whose newest event time is not yet reported to the customers agent "
            "(reported after a second of quiet; 0 once traffic has stopped and settled).",
            ["stream"],
            registry=r,
        )
        self.signals_partitions_waiting = Gauge(
            "cxpulse_signals_partitions_waiting",
            "Owned cx.signals partitions whose ordered notifications wait for an input partition that "
            "has never reported progress (at most CXPULSE_IDLE_PARTITION_SECONDS after their first report).",
            registry=r,
        )
        self.notifications_suppressed = Counter(
            "cxpulse_notifications_suppressed",
            "Candidate notifications not sent (cooldown, daily_cap, duplicate).",
            ["type", "reason"],
            registry=r,
        )
        self.delivery_delays_predicted = Counter(
            "cxpulse_delivery_delays_predicted",
            "Orders predicted to miss their promise.",
            ["carrier", "region"],
            registry=r,
        )
        self.delivery_delays_missed = Counter(
            "cxpulse_delivery_delays_missed",
            "Orders whose promised_by passed undelivered with no prior delay notification.",
            registry=r,
        )
        self.notification_lead_time = Histogram(
            "cxpulse_notification_lead_time_seconds",
            "promised_by minus the event time of a delivery_delayed notification.",
            buckets=LEAD_TIME_BUCKETS,
            registry=r,
        )
        self.frustration_scores_over_threshold = Counter(
            "cxpulse_frustration_threshold_crossings",
            "Customers whose frustration score crossed the threshold.",
            registry=r,
        )


class Tally:
    """The increments of one counter child on the hot path: a plain int, added to the child when
    the registry is collected (``/metrics``, ``get_sample_value``).

    A prometheus_client ``inc()`` takes a lock and checks the metric on every call, about 0.5 us;
    a clickstream event made five of them. The total only grows and is read, never reset, by
    the collection, so a scrape from another thread cannot lose an increment.
    """

    __slots__ = ("child", "synced", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.total = 0
        self.synced = 0

    def inc(self, amount: int = 1) -> None:
        self.total += amount

    def sync(self) -> None:
        total = self.total
        if total != self.synced:
            self.child.inc(total - self.synced)
            self.synced = total


class HistogramTally:
    """The observations of one histogram child on the hot path: bucket counts and a sum in plain
    numbers, added to the child when the registry is collected (as :class:`Tally` for counters).

    prometheus_client's ``observe()`` walks the buckets in Python and takes two locks, about 2 us
    per call; this is a bisect and two additions. prometheus_client has no call that adds many
    observations at once, so :meth:`sync` adds to the child's bucket and sum values directly
    (``_upper_bounds``, ``_buckets``, ``_sum`` of prometheus-client 0.26, which the project pins;
    ``tests/streams/test_metrics.py`` fails if they change). Counts and the sum only grow (the
    values observed are never negative), so a scrape from another thread cannot lose one.
    """

    __slots__ = ("bounds", "child", "counts", "sum", "synced_counts", "synced_sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.synced_counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.synced_sum = 0.0

    def observe(self, amount: float) -> None:
        """``amount`` (>= 0) goes in the first bucket whose upper bound is at least it."""
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount

    def sync(self) -> None:
        counts, synced = self.counts, self.synced_counts
        for i, count in enumerate(counts):
            if count != synced[i]:
                self.child._buckets[i].inc(count - synced[i])
                synced[i] = count
        total = self.sum
        if total != self.synced_sum:
            self.child._sum.inc(total - self.synced_sum)
            self.synced_sum = total


class TallyBook:
    """A collector that yields nothing: collecting it syncs every :class:`Tally` into its counter.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> registry = CollectorRegistry()
    >>> book = TallyBook()
    >>> registry.register(book)
    >>> views = book.tally(Counter("v", "views", registry=registry))
    >>> views.inc(); views.inc()
    >>> registry.get_sample_value("v_total")
    2.0
    """

    def __init__(self) -> None:
        self._tallies: list[Tally | HistogramTally] = []

    def tally(self, child: Any) -> Tally:
        tally = Tally(child)
        self._tallies.append(tally)
        return tally

    def histogram(self, child: Any) -> HistogramTally:
        """A :class:`HistogramTally` of one histogram child, synced at each collection."""
        tally = HistogramTally(child)
        self._tallies.append(tally)
        return tally

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        for tally in self._tallies:
            tally.sync()
        return []


class Children(dict[tuple[str, ...], Any]):
    """The children of one labelled metric, bound once per label set and then reused.

    ``metric.labels(...)`` costs a lock and a dict lookup on every call; label values are
    bounded (capped and normalised), so memoising the bound child per label tuple is bounded
    too and leaves the hot path one dict lookup.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> views = Children(Counter("v", "views", ["page"], registry=CollectorRegistry()))
    >>> views.get_child("/cart") is views.get_child("/cart")
    True
    """

    __slots__ = ("metric", "tallies")

    def __init__(self, metric: Any, tallies: TallyBook | None = None) -> None:
        super().__init__()
        self.metric = metric
        #: For a counter on the hot path: children are :class:`Tally` objects of this book.
        self.tallies = tallies

    def get_child(self, *values: str) -> Any:
        child = self.get(values)
        if child is None:
            child = self.metric.labels(*values)
            if self.tallies is not None:
                child = self.tallies.tally(child)
            self[values] = child
        return child
