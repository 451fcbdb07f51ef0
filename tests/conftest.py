"""Session fixtures: a real Kafka broker for the whole run, started by the suite itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from streams.settings import Settings
from tests.kafka_harness import WorkerProcess, isolated_settings, start_worker
from tests.live import LivePipeline, start_live_pipeline, stop_live_pipeline
from tests.secured_kafka import SecuredKafka, start_secured_broker

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of our own on free ports; never the demo's. Fails (no skip) if it can't start."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """A second broker, SASL/SCRAM-SHA-512 over TLS like a managed Kafka; started once, when first asked for."""
    secured = start_secured_broker(tmp_path_factory.mktemp("secured-kafka"))
    yield secured
    secured.broker.stop()


@pytest.fixture
def kafka_settings(kafka_broker: KafkaBroker, tmp_path: Path) -> Settings:
    """Settings with this test's own topics and consumer group, topics created."""
    return isolated_settings(kafka_broker.bootstrap, tmp_path / "var")


@pytest.fixture
def worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real ``cxpulse worker`` process on this test's topics."""
    process = start_worker(kafka_settings, tmp_path / "logs")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def live_pipeline(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePipeline]:
    """Simulator -> Kafka -> worker -> Prometheus -> Alertmanager, all real (see tests/live.py)."""
    pipeline = start_live_pipeline(kafka_broker.bootstrap, tmp_path_factory.mktemp("live"))
    yield pipeline
    stop_live_pipeline(pipeline)
