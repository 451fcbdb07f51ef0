"""The live-traffic scenario of the fleet tests (restarts, scaling out and in): what is produced,
and which notifications a disturbed run must send exactly as an undisturbed one."""

from __future__ import annotations

from deploy.simulator.simulation import Incident, SimulationConfig, iter_encoded
from streams.settings import Settings
from tests.detectors.test_delivery_quality import INCIDENT
from tests.kafka_harness import WorkerProcess, isolated_settings, wait_drained, wait_signals_drained

DAY = 86400.0
#: A carrier delay (delay notifications) and a complaint spike on top of the usual contacts and
#: deliveries: every notification type comes up within three simulated days.
INCIDENTS = (INCIDENT, "complaint_spike:reason=billing,at=30h,duration=1h,factor=6")
#: Notification types a disturbed run must send exactly as the undisturbed one: all but
#: ``delivery_delayed``, decided by each partition's transit model (streams/deliveries.py). The
#: model is checkpointed before every commit, but a crash loses what it learnt since (the orders
#: table already holds those messages, so they are not learnt again): a restart can still change
#: a delay notification near it (docs/fleet.md, "Crash window").
EXACT_TYPES = {"delivery_failed", "detractor_followup", "repeat_contact", "frustration_outreach"}


def notification_traffic(settings: Settings, days: float, seed: int) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value) of ``days`` simulated days of contacts and deliveries, one event each."""
    config = SimulationConfig(
        seed=seed, sim_seconds=days * DAY, events_per_sim_second=0.05,
        incidents=tuple(Incident.parse(spec) for spec in INCIDENTS),
        mix={"clickstream": 0.0, "contacts": 0.15, "deliveries": 0.85},
    )  # fmt: skip
    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
              "deliveries": settings.topic_deliveries}  # fmt: skip
    return [(topics[stream], key, value) for stream, key, value in iter_encoded(config, batch_size=1)]


def reference_settings(settings: Settings, bootstrap: str, data_dir) -> Settings:
    """Another consumer group on the same input topics, with its own output topics: the undisturbed
    reference run of a test that disturbs ``settings``' workers."""
    return isolated_settings(
        bootstrap, data_dir, partitions=settings.partitions, topic_clickstream=settings.topic_clickstream,
        topic_contacts=settings.topic_contacts, topic_deliveries=settings.topic_deliveries,
    )  # fmt: skip


def wait_everything_processed(workers: list[WorkerProcess], timeout: float = 300.0) -> list[dict]:
    """Every group among ``workers`` has processed its input, then its signals."""
    for topic in ("topic_clickstream", "topic_contacts", "topic_deliveries"):
        wait_drained(workers, topic, timeout=timeout)
    return wait_signals_drained(workers, timeout=timeout)
