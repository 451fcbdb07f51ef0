"""Topics and clients carry the size budget; ``cxpulse topics create`` aligns existing topics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.size_budget import SizeBudget
from streams.topics import INPUT_TOPICS, MAX_MESSAGE_BYTES, client_config, create_topics, topic_specs
from tests.kafka_harness import isolated_settings


def test_every_topic_and_client_has_its_size_limit_from_the_one_setting():
    from streams.settings import Settings

    settings = Settings(max_message_bytes=500_000)
    budget = SizeBudget.of(settings)
    limits = {spec.topic: int(spec.config[MAX_MESSAGE_BYTES]) for spec in topic_specs(settings)}
    assert {topic: limit for topic, limit in limits.items() if topic in INPUT_TOPICS} == dict.fromkeys(
        INPUT_TOPICS, budget.input_record_bytes
    )
    assert {limit for topic, limit in limits.items() if topic not in INPUT_TOPICS} == {budget.output_record_bytes}
    assert client_config(settings)["message.max.bytes"] == budget.input_record_bytes


@pytest.mark.kafka
def test_existing_topics_get_the_budget_and_keep_their_other_configs(kafka_broker, tmp_path: Path):
    settings = isolated_settings(kafka_broker.bootstrap, tmp_path)  # creates the topics
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    older = settings.model_copy(update={"topic_alerts": f"{settings.topic_alerts}-older"})
    # A topic made before the budget existed: the broker's default limit, an operator's retention.
    admin.create_topics([NewTopic(older.topic_alerts, 2, 1, config={"retention.ms": "1000"})])[
        older.topic_alerts
    ].result(30)
    deadline = time.monotonic() + 30
    while older.topic_alerts not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)  # the broker's metadata catches up with the creation
    outcome = create_topics(older)
    budget = SizeBudget.of(older)
    assert outcome[older.topic_alerts] == (
        f"exists (2 partitions), {MAX_MESSAGE_BYTES} 1048588 -> {budget.output_record_bytes}"
    )
    assert outcome[older.topic_contacts] == "exists (2 partitions)"  # already right: untouched
    resource = ConfigResource(ResourceType.TOPIC, older.topic_alerts)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs[MAX_MESSAGE_BYTES].value == str(budget.output_record_bytes)
    assert configs["retention.ms"].value == "1000"
