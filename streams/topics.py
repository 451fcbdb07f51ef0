"""Topic names, partition counts and configs, and their idempotent creation."""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    setting: str  # the Settings field holding the name
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic cxpulse reads or writes (Faust creates its own internal changelogs)."""
    week = str(7 * 24 * 3600 * 1000)
    inputs = {"retention.ms": week}
    outputs = {"retention.ms": week}
    # Dead letters are kept longer: someone has to look at them and maybe replay them.
    deadletter = {"retention.ms": str(30 * 24 * 3600 * 1000)}
    n = settings.partitions
    return [
        TopicSpec("topic_clickstream", settings.topic_clickstream, n, inputs),
        TopicSpec("topic_contacts", settings.topic_contacts, n, inputs),
        TopicSpec("topic_deliveries", settings.topic_deliveries, n, inputs),
        TopicSpec("topic_signals", settings.topic_signals, n, inputs),
        TopicSpec("topic_alerts", settings.topic_alerts, n, outputs),
        TopicSpec("topic_notifications", settings.topic_notifications, n, outputs),
        TopicSpec("topic_deadletter", settings.topic_deadletter, n, deadletter),
    ]


def client_config(settings: Settings) -> dict[str, str | int | float | bool]:
    """librdkafka (confluent-kafka) settings from cxpulse settings, security included."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
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
    """Create missing topics; existing ones are left as they are. Returns name -> outcome."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(settings))
    existing = admin.list_topics(timeout=timeout).topics
    outcome: dict[str, str] = {}
    wanted = []
    for spec in topic_specs(settings):
        if spec.name in existing:
            have = len(existing[spec.name].partitions)
            outcome[spec.name] = f"exists ({have} partitions)"
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
    return outcome
