"""The topic set and the table stores, each named once and typed, and topic creation.

Code addresses a topic by :class:`Topic` and a store by :class:`Store`, never by a string: a typo
fails at import time, and :func:`topic_names` is the one place that maps a topic to the setting
holding its Kafka name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas import Stream
from streams.broker_access import cluster_metadata, librdkafka_error_callback
from streams.settings import Settings
from streams.size_budget import SizeBudget


class Topic(StrEnum):
    """Every topic cxpulse reads or writes (Faust creates its own changelog topics)."""

    CLICKSTREAM = "clickstream"
    CONTACTS = "contacts"
    DELIVERIES = "deliveries"
    SIGNALS = "signals"
    SERIES = "series"  # internal: per-step series partials and progress, for the series owners
    ALERTS = "alerts"
    NOTIFICATIONS = "notifications"
    DEADLETTER = "deadletter"

    @classmethod
    def of_stream(cls, stream: Stream) -> Topic:
        """The input topic of an input stream."""
        return cls(stream.value)


#: The three input topics, in the order of :class:`schemas.Stream`.
INPUT_TOPICS: tuple[Topic, ...] = (Topic.CLICKSTREAM, Topic.CONTACTS, Topic.DELIVERIES)


class Store(StrEnum):
    """The changelogged tables of the worker; the value is the Faust table name."""

    ORDERS = "orders"  # order state (deliveries), keyed by order id
    CONTACTS = "contacts"  # repeat-contact history, keyed by customer id
    FRUSTRATION = "frustration"  # decaying frustration score (cx.signals), keyed by customer id
    POLICY = "policy"  # notification cooldowns and daily cap (cx.signals), keyed by customer id
    LOGINS = "logins"  # failed-login streaks (cx.signals), keyed by customer id
    HELD = "held"  # signals waiting for the signals watermark (cx.signals), keyed by customer id


#: The table of per-partition checkpoints (streams/checkpoints.py), keyed "<state>/<partition>".
CHECKPOINTS_TABLE = "checkpoints"


def topic_names(settings: Settings) -> dict[Topic, str]:
    """Kafka name of every topic, from its ``CXPULSE_TOPIC_*`` setting."""
    return {
        Topic.CLICKSTREAM: settings.topic_clickstream,
        Topic.CONTACTS: settings.topic_contacts,
        Topic.DELIVERIES: settings.topic_deliveries,
        Topic.SIGNALS: settings.topic_signals,
        Topic.SERIES: settings.topic_series,
        Topic.ALERTS: settings.topic_alerts,
        Topic.NOTIFICATIONS: settings.topic_notifications,
        Topic.DEADLETTER: settings.topic_deadletter,
    }


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    name: str
    partitions: int
    config: dict[str, str]


#: The topic config that carries the size budget (streams/size_budget.py).
MAX_MESSAGE_BYTES = "max.message.bytes"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic with its Kafka name, partitions and configs."""
    week = str(7 * 24 * 3600 * 1000)
    # Dead letters are kept longer: someone has to look at them and maybe replay them.
    retention = {Topic.DEADLETTER: str(30 * 24 * 3600 * 1000)}
    # Input topics take what the worker can still dead-letter whole; what it writes has room for that.
    budget = SizeBudget.of(settings)
    return [
        TopicSpec(
            topic,
            name,
            settings.partitions,
            {
                "retention.ms": retention.get(topic, week),
                MAX_MESSAGE_BYTES: str(
                    budget.input_record_bytes if topic in INPUT_TOPICS else budget.output_record_bytes
                ),
            },
        )
        for topic, name in topic_names(settings).items()
    ]


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka (confluent-kafka) settings from cxpulse settings, security included.

    Refused credentials or certificates raise :class:`streams.exceptions.BrokerAccessError` from
    the client's next poll instead of being retried until a timeout. ``message.max.bytes`` is the
    input topics' limit: cxpulse produces with librdkafka only to input topics (the simulator),
    so a record the broker would refuse fails in the producer.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
        "error_cb": librdkafka_error_callback(settings),
        "message.max.bytes": SizeBudget.of(settings).input_record_bytes,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username:
        config["sasl.username"] = settings.sasl_username
    if settings.sasl_password is not None:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    return config


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; on existing ones only ``max.message.bytes`` is set to the size budget
    (the other configs are the operator's). Returns name -> outcome."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(settings))
    existing = cluster_metadata(admin, timeout).topics
    outcome: dict[str, str] = {}
    wanted = []
    present = []
    for spec in topic_specs(settings):
        if spec.name in existing:
            have = len(existing[spec.name].partitions)
            outcome[spec.name] = f"exists ({have} partitions)"
            present.append(spec)
        else:
            wanted.append(NewTopic(spec.name, spec.partitions, settings.replication_factor, config=spec.config))
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
        try:
            future.result(timeout)
            outcome[name] = "created"
        except Exception as exc:  # a concurrent creator wins the race: that is fine
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                outcome[name] = "exists"
            else:
                raise
    for name, change in _align_size_limits(admin, present, timeout).items():
        outcome[name] += f", {change}"
    return outcome


def _align_size_limits(admin: Any, specs: list[TopicSpec], timeout: float) -> dict[str, str]:
    """Set ``max.message.bytes`` of existing topics to the budget where it differs; name -> change."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    if not specs:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in specs]
    current = {
        resource.name: future.result(timeout)
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items()
    }
    changes: dict[str, str] = {}
    updates = []
    for spec in specs:
        want = spec.config[MAX_MESSAGE_BYTES]
        have = current[spec.name][MAX_MESSAGE_BYTES].value
        if have != want:
            changes[spec.name] = f"{MAX_MESSAGE_BYTES} {have} -> {want}"
            entry = ConfigEntry(MAX_MESSAGE_BYTES, want, incremental_operation=AlterConfigOpType.SET)
            updates.append(ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=[entry]))
    for future in admin.incremental_alter_configs(updates, request_timeout=timeout).values() if updates else []:
        future.result(timeout)
    return changes
