"""The worker's settings: one typed, frozen object, read once from the environment (``CXPULSE_``).

Every setting below is documented with its environment variable and default in the README's
settings table; ``cxpulse settings`` prints the values in force (secrets masked). Settings only
the local tooling reads (ports of the local Kafka controller, Prometheus and Alertmanager) live
in :class:`deploy.local.settings.LocalSettings`, which extends this class.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The source checkout when running from one (its ``var/`` holds local data), else the cwd.
_CHECKOUT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()


class Settings(BaseSettings):
    """cxpulse settings. Environment variable = ``CXPULSE_`` + field name in upper case."""

    # Validation errors quote their input, which holds the SASL password: they must not.
    model_config = SettingsConfigDict(env_prefix="CXPULSE_", frozen=True, extra="ignore", hide_input_in_errors=True)

    # --- Kafka -------------------------------------------------------------------------
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol, passed to both Faust (aiokafka) and confluent-kafka."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); required with SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_cafile: Path | None = Field(None, description="CA bundle for SSL / SASL_SSL.")

    # --- Topics --------------------------------------------------------------------------
    topic_clickstream: str = Field("cx.clickstream", description="Input: web/app clickstream (key session_id).")
    topic_contacts: str = Field("cx.contacts", description="Input: support contacts and surveys (key customer_id).")
    topic_deliveries: str = Field("cx.deliveries", description="Input: delivery tracking (key order_id).")
    topic_signals: str = Field("cx.signals", description="Internal: per-customer signals re-keyed by customer_id.")
    topic_series: str = Field(
        "cx.series", description="Internal: per-step series partials and progress for the series owners."
    )
    topic_alerts: str = Field("cx.alerts", description="Output: anomaly alerts (CloudEvents).")
    topic_notifications: str = Field("cx.notifications", description="Output: proactive notifications (CloudEvents).")
    topic_deadletter: str = Field("cx.deadletter", description="Output: rejected input with reason headers.")
    partitions: int = Field(
        4, ge=1, description="Partitions of every cxpulse topic (the most workers one group can use)."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")

    # --- Worker --------------------------------------------------------------------------
    app_id: str = Field("cxpulse", description="Faust app id = Kafka consumer group.")
    web_port: int = Field(6066, description="Worker web port serving /metrics.")
    web_host: str = Field("127.0.0.1", description="Interface the worker's web server binds.")
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb:// (needs the rocksdb extra).")
    data_dir: Path = Field(
        PROJECT_ROOT / "var", description="Project-local folder for Kafka, Prometheus and worker data."
    )
    source_id: str = Field(
        "/cxpulse",
        min_length=1,
        description=(
            "Prefix of the CloudEvents `source` of every alert and notification: each event's source is "
            "`<this>/<component>` (clickstream, contacts, deliveries or customers)."
        ),
    )

    # --- Rebalances and restarts ---------------------------------------------------------
    instance_id: str = Field(
        "auto",
        description=(
            "Static group membership: a stable id per worker process, so a restarted worker takes its "
            "partitions back without a rebalance. auto = host name + web port; empty = dynamic membership."
        ),
    )
    broker_session_timeout_seconds: float = Field(
        15.0,
        ge=6.0,
        description=(
            "A worker silent this long leaves the consumer group and its partitions move; also how long "
            "a stopped static member's partitions wait for it. Heartbeats go every fifth of it (at most 3 s)."
        ),
    )
    changelog_segment_seconds: float = Field(
        600.0,
        ge=1.0,
        description=(
            "segment.ms of the table changelog topics Faust creates: Kafka compacts only closed segments, so "
            "this bounds the updates a recovery reads beyond one record per live key."
        ),
    )

    # --- Input limits and event time -------------------------------------------------------
    max_message_bytes: int = Field(
        1_048_576,
        ge=1024,
        description=(
            "Larger input messages are dead-lettered; every Kafka size limit of cxpulse derives from it "
            "(streams/size_budget.py)."
        ),
    )
    max_batch_events: int = Field(1000, description="Batches with more events are dead-lettered.")
    dedup_horizon_seconds: float = Field(
        3600.0, description="Event-time horizon within which a repeated event_id counts once."
    )
    dedup_max_ids: int = Field(
        200_000, description="Upper bound on remembered event ids per input partition a worker owns."
    )
    late_grace_seconds: float = Field(
        120.0,
        description=(
            "Events older than the stream's clock by more than this are counted late "
            "(still in the counters, left out of closed windows)."
        ),
    )
    idle_partition_seconds: float = Field(
        30.0,
        description=(
            "A partition silent this long (processing time) stops holding back the stream's "
            "event-time watermark; liveness only, never an outcome."
        ),
    )
    window_seconds: float = Field(
        3600.0, description="Length of the rolling event-time window behind the *_rolling gauges."
    )
    delivery_window_seconds: float = Field(
        86400.0, description="Rolling event-time window of the on-time delivery ratio."
    )
    session_timeout_seconds: float = Field(
        1800.0, description="Event-time inactivity after which a session is forgotten."
    )

    # --- Frustration signals (detectors/frustration.py) ----------------------------------
    rage_min_clicks: int = Field(3, description="Clicks on one element that make a rage click.")
    rage_max_interval_seconds: float = Field(1.0, description="Most time between two clicks of a rage burst.")
    rage_max_distance_px: float = Field(30.0, description="Most |dx|+|dy| between two clicks of a rage burst.")
    rage_ignore_selectors: str = Field(
        "", description="Comma-separated selector globs (or re:REGEX) never counted as rage clicks."
    )
    rage_ignore_texts: str = Field(
        "next,previous,prev,>,<,+,-,−,–", description="Comma-separated element texts never counted as rage clicks."
    )
    error_click_window_seconds: float = Field(1.0, description="An error this soon after a click makes an error click.")
    failed_login_threshold: int = Field(3, description="Failed logins that make a streak.")
    failed_login_window_seconds: float = Field(
        300.0, description="Span within which the failed logins of a streak fall."
    )

    # --- Series anomaly alerts (detectors/series_watch.py) ------------------------------
    alert_step_seconds: float = Field(
        60.0, description="Event-time step of watched series (complaints, rage clicks...)."
    )
    delivery_alert_step_seconds: float = Field(3600.0, description="Event-time step of the on-time ratio series.")
    alert_warmup_steps: int = Field(60, description="Steps a series is watched before it may alert.")

    # --- Proactive notifications (detectors/*: contact_rules, delivery_delay, frustration_score,
    #     notification_policy) --------------------------------------------------------------
    repeat_contact_threshold: int = Field(3, description="The contact that makes a repeat contact (3rd).")
    repeat_contact_window_seconds: float = Field(7 * 86400.0, description="Window of the repeat-contact rule.")
    detractor_csat_max: int = Field(2, description="CSAT at or below this is a detractor.")
    detractor_nps_max: int = Field(6, description="NPS at or below this is a detractor.")
    detractor_ces_min: int = Field(6, description="CES at or above this is a detractor.")
    delay_margin_seconds: float = Field(
        7200.0, description="A carrier ETA this much past promised_by triggers delivery_delayed."
    )
    delay_min_confidence: float = Field(
        0.96, ge=0.5, le=1.0,
        description="Probability of missing promised_by at which delivery_delayed goes out.",
    )
    transit_regression: bool = Field(
        True, description="Correct transit times by ship weekday/hour with River's regression.",
    )
    frustration_half_life_seconds: float = Field(6 * 3600.0, description="Half-life of the frustration score.")
    frustration_threshold: float = Field(8.0, description="Score that triggers frustration_outreach.")
    notification_cooldown_seconds: float = Field(86400.0, description="Per customer and type.")
    notification_daily_cap: int = Field(
        3, description="Engagement notifications per customer per rolling 24 h (transactional ones count, never wait)."
    )
    immediate_notification_types: str = Field(
        "delivery_delayed,delivery_failed",
        description=(
            "Transactional notification types decided on arrival (duplicates only: no cooldown, no cap); "
            "the others wait for the signals watermark and are decided in event-time order."
        ),
    )
    # 0.2 s: live, ordered notifications wait p99 ~0.6 s instead of ~2.2 s at 1 s (README,
    # Performance). A partition still reports at most every 0.1 s of wall time, so a backlog
    # or a busy stream sends no more records than before: at most 10 per input partition and
    # cx.signals partition per second.
    signals_progress_seconds: float = Field(
        0.2, gt=0.0,
        description=(
            "Event time an input partition's clock advances between two progress records to every "
            "cx.signals partition: smaller waits less before ordered notifications, sends more records."
        ),
    )

    # --- Labels ----------------------------------------------------------------------------
    route_patterns: str = Field(
        "",
        description="Extra route templates, comma-separated regex=template pairs applied before the built-in id rules.",
    )
    max_pages: int = Field(50, description="Distinct page labels kept; the rest become 'other'.")
    max_label_values: int = Field(
        30, description="Distinct reason/carrier/region/channel values kept; the rest become 'other'."
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        # Both Kafka clients would otherwise pick their own default mechanism (aiokafka PLAIN,
        # librdkafka GSSAPI) and fail later with a less telling error.
        if self.security_protocol.startswith("SASL"):
            missing = [
                f"CXPULSE_{name.upper()}"
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"CXPULSE_SECURITY_PROTOCOL={self.security_protocol} needs {', '.join(missing)}")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings in force, read once per process."""
    return Settings()
