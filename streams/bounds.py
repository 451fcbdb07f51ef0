"""The documented bound on the series one worker shows on ``/metrics``, from the settings.

Prometheus keeps one time series per sample line, so the sample lines on ``/metrics`` are what a
worker costs it. Every label of cxpulse's metrics takes its values from a closed set (streams,
event types, dead-letter reasons, delivery statuses, alert and notification types, ...) or from a
capped one (:mod:`streams.labels`): pages are at most ``CXPULSE_MAX_PAGES`` route templates plus
``other``; reason, carrier and region at most ``CXPULSE_MAX_LABEL_VALUES`` values plus ``other``;
channel is the schema's enum (capped the same way). Input is validated first, and these fields are
required and non-empty, so ``unknown`` never appears. A family therefore shows at most the
number of its label combinations times its samples per combination: 1 for a counter or a gauge,
2 for a summary (``_sum``, ``_count``), buckets + 3 for a histogram (the buckets, ``+Inf``,
``_sum``, ``_count``); ``*_created`` samples are disabled (:mod:`streams.metrics`).

Faust's own ``faust_*`` families on the worker's page are not counted here: their labels are
topics, partitions, tables and HTTP status codes, fixed by the deployment.

With the defaults (50 pages, 30 label values, 4 partitions) the bound is 14,499 samples; the
carrier x region families make 93% of it (31 x 31 lanes, 14 samples per lane).
"""

from __future__ import annotations

from schemas import Stream
from schemas.models import ALERT_TYPES, NOTIFICATION_TYPES
from schemas.parsing import REASONS, load_schema
from streams.contacts import NPS_VALUES
from streams.metrics import LAG_BUCKETS, LEAD_TIME_BUCKETS, RESOLUTION_BUCKETS
from streams.settings import Settings
from streams.topics import Topic

#: Why the notification policy suppresses a candidate (``detectors.notification_policy``).
SUPPRESSION_REASONS = ("duplicate", "cooldown", "daily_cap")


def _capped(values: int, limit: int) -> int:
    """Distinct label values of a dimension with ``values`` possible values capped at ``limit``."""
    return values if values <= limit else limit + 1


def label_values(settings: Settings) -> dict[str, int]:
    """The most distinct values each capped label can take on one worker."""
    limit = settings.max_label_values
    channels = load_schema(Stream.CONTACTS)["$defs"]["contact_opened"]["properties"]["channel"]["enum"]
    return {
        "page": settings.max_pages + 1,
        "reason": limit + 1,
        "channel": _capped(len(channels), limit),
        "carrier": limit + 1,
        "region": limit + 1,
    }


def series_bounds(settings: Settings) -> dict[str, int]:
    """The most samples each cxpulse metric family can show on ``/metrics`` (family name -> bound).

    >>> bounds = series_bounds(Settings())
    >>> bounds["cxpulse_page_views"], bounds["cxpulse_delivery_status"], sum(bounds.values())
    (51, 6727, 14506)
    """
    v = label_values(settings)
    pages, reasons, channels = v["page"], v["reason"], v["channel"]
    lanes = v["carrier"] * v["region"]
    types = {stream: len(load_schema(stream)["$defs"]) for stream in Stream}
    streams = len(Stream)
    fed = streams + 1  # the input streams and cx.signals (the customers agent's dead letters)
    rejecting = fed + 1  # and cx.series (the series owners' dead letters)
    alert_types, notification_types = len(ALERT_TYPES), len(NOTIFICATION_TYPES)
    # One anomaly score per watched series (streams/clickstream.py, contacts.py, deliveries.py):
    # the client error rate and errors and rage clicks per page; complaints per reason and per
    # channel, CSAT, NPS, FCR; on-time per lane.
    watched = (1 + 2 * pages) + (reasons + channels + 3) + lanes

    def histogram(buckets: tuple[float, ...]) -> int:
        return len(buckets) + 3

    return {
        # pipeline
        "cxpulse_events": sum(types.values()),
        "cxpulse_events_rejected": rejecting * len(REASONS),
        "cxpulse_events_late": streams,
        "cxpulse_events_duplicate": streams,
        "cxpulse_messages": streams,
        "cxpulse_deadletters": rejecting,
        "cxpulse_output_send_failures": len(Topic),  # labelled by the Topic enum
        "cxpulse_kafka_connected": 1,
        "cxpulse_event_time_seconds": streams,
        "cxpulse_event_delay_seconds": streams * histogram(LAG_BUCKETS),
        "cxpulse_consumer_lag_messages": fed * settings.partitions,
        "cxpulse_assigned_partitions": fed,
        # clickstream
        "cxpulse_page_views": pages,
        "cxpulse_client_errors": pages,
        "cxpulse_clicks": pages,
        "cxpulse_sessions_started": 1,
        "cxpulse_active_sessions": 1,
        "cxpulse_logins": 2,
        "cxpulse_rage_clicks": pages,
        "cxpulse_error_clicks": pages,
        "cxpulse_dead_clicks": pages,
        "cxpulse_failed_login_streaks": 1,
        "cxpulse_client_error_rolling_ratio": 1,
        # contacts
        "cxpulse_contacts_opened": channels * reasons,
        "cxpulse_complaints": reasons * channels,
        "cxpulse_contacts_resolved": 2,
        "cxpulse_resolution_time_seconds": channels * histogram(RESOLUTION_BUCKETS),
        "cxpulse_csat_score": 2,
        "cxpulse_ces_score": 2,
        "cxpulse_nps_responses": len(NPS_VALUES),
        "cxpulse_csat_rolling_score": 1,
        "cxpulse_ces_rolling_score": 1,
        "cxpulse_nps_rolling_score": 1,
        "cxpulse_fcr_rolling_ratio": 1,
        # deliveries
        "cxpulse_delivery_status": types[Stream.DELIVERIES] * lanes,
        "cxpulse_deliveries": lanes * 2,
        "cxpulse_failed_delivery_attempts": lanes,
        "cxpulse_delivery_exceptions": lanes,
        "cxpulse_on_time_rolling_ratio": lanes,
        "cxpulse_orders_open": 1,
        # detectors, alerts and notifications
        "cxpulse_anomaly_score": watched,
        "cxpulse_alerts": alert_types,
        "cxpulse_alerts_resolved": alert_types,
        "cxpulse_alerts_active": alert_types,
        "cxpulse_series_late_partials": streams,
        "cxpulse_series_late_events": streams,
        "cxpulse_signals_progress_pending": streams,
        "cxpulse_signals_partitions_waiting": 1,
        "cxpulse_notifications": notification_types,
        "cxpulse_notifications_suppressed": notification_types * len(SUPPRESSION_REASONS),
        "cxpulse_delivery_delays_predicted": lanes,
        "cxpulse_delivery_delays_missed": 1,
        "cxpulse_notification_lead_time_seconds": histogram(LEAD_TIME_BUCKETS),
        "cxpulse_frustration_threshold_crossings": 1,
    }


def series_bound(settings: Settings) -> int:
    """The most samples of cxpulse's own metrics on one worker's ``/metrics``."""
    return sum(series_bounds(settings).values())
