"""cxpulse against a broker secured like a managed Kafka (SASL/SCRAM-SHA-512 over TLS).

Every command gets its credentials from ``CXPULSE_*`` settings only, as in production: the
worker, ``cxpulse simulate``, ``cxpulse tail`` and ``cxpulse topics create`` must work with the
right ones, stop quickly with an error that says what to fix with wrong ones, and never print
the password anywhere.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer
from pydantic import SecretStr

from deploy.simulator.simulation import STREAMS
from streams.settings import PROJECT_ROOT
from streams.topics import client_config, topic_names
from tests.kafka_harness import sample, settings_env, start_worker
from tests.secured_kafka import SecuredKafka, issue_broker_certificates

pytestmark = pytest.mark.kafka

#: A refused command must say so within this, start-up on a busy machine included; without the
#: access checks, topics create waits 30 s, simulate minutes and tail forever.
REFUSAL_DEADLINE_S = 25.0
#: Commands that would otherwise retry until a timeout (or, for tail, forever).
COMMANDS = {
    "topics create": ["topics", "create"],
    "simulate": ["simulate", "--rate", "50", "--duration", "30"],
    "tail": ["tail", "alerts"],
    "worker": ["worker", "--loglevel", "info"],
}


def cxpulse(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a ``cxpulse`` command as a user would; fail the test (not hang) if it outlives ``timeout``."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.stdout}\n{result.stderr}"


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """cxpulse's one error line (librdkafka may log its own lines around it)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("cxpulse: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_every_command_works_with_the_credentials_from_settings(secured_kafka: SecuredKafka, tmp_path: Path):
    settings = secured_kafka.settings(tmp_path / "var")
    env = settings_env(settings)
    printed: list[str] = []

    created = cxpulse(["topics", "create"], env)
    printed.append(output(created))
    assert created.returncode == 0, output(created)
    assert set(created.stdout.splitlines()) == {f"{name}: created" for name in topic_names(settings).values()}

    # It owns its partitions only after joining its consumer group over SASL_SSL.
    worker = start_worker(settings, tmp_path / "logs", loglevel="info")
    try:
        simulated = cxpulse(["simulate", "--rate", "50", "--duration", "4", "--speedup", "60", "--seed", "7"], env)
        printed.append(output(simulated))
        assert simulated.returncode == 0, output(simulated)
        stats = json.loads(simulated.stdout)
        assert stats["events"] > 0 and stats["delivery_failures"] == 0 and stats["undelivered"] == 0

        # One message the worker must dead-letter, so that it also produces over SASL_SSL and tail has a record.
        producer = Producer(client_config(settings))
        producer.produce(settings.topic_clickstream, b'{"event_id": ', key=b"session-broken")
        assert producer.flush(30) == 0
        expected = {stream: stats["per_stream"][stream]["messages"] for stream in STREAMS}
        expected["clickstream"] += 1
        worker.wait_for(
            lambda m: all(sample(m, "cxpulse_messages_total", stream=s) >= n for s, n in expected.items()),
            timeout=120,
            what="the simulated traffic and the broken message processed",
        )

        tailed = cxpulse(["tail", "deadletter", "--from-beginning", "--limit", "1"], env, timeout=60)
        printed.append(output(tailed))
        assert tailed.returncode == 0, output(tailed)
        assert tailed.stdout.startswith("invalid_json:"), tailed.stdout

        shown = cxpulse(["settings"], env)
        printed.append(output(shown))
        assert "CXPULSE_SASL_PASSWORD=**********" in shown.stdout.splitlines()
        assert f"CXPULSE_SASL_USERNAME={secured_kafka.username}" in shown.stdout.splitlines()

        metrics_page = requests.get(worker.metrics_url, timeout=10).text
        assert "cxpulse_messages_total" in metrics_page
    finally:
        worker.stop()
    leaks = {
        "the worker's log": worker.log_path.read_text(errors="replace"),
        "/metrics": metrics_page,
        "the commands' output": "\n".join(printed),
    }
    assert not [where for where, text in leaks.items() if secured_kafka.password in text]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_wrong_password_stops_the_command_saying_authentication_failed(
    secured_kafka: SecuredKafka, tmp_path: Path, command: str
):
    wrong_password = f"wrong-{secrets.token_urlsafe(12)}"
    settings = secured_kafka.settings(tmp_path / "var", sasl_password=SecretStr(wrong_password))
    started = time.monotonic()
    result = cxpulse(COMMANDS[command], settings_env(settings), timeout=REFUSAL_DEADLINE_S * 3)
    elapsed = time.monotonic() - started

    assert result.returncode == os.EX_CONFIG, output(result)
    assert elapsed < REFUSAL_DEADLINE_S, f"took {elapsed:.1f}s"
    error = error_line(result)
    assert error.startswith("cxpulse: Kafka authentication failed"), error
    assert f"SASL user '{secured_kafka.username}' (SCRAM-SHA-512)" in error
    assert "CXPULSE_SASL_PASSWORD" in error
    assert wrong_password not in output(result) and secured_kafka.password not in output(result)


@pytest.mark.parametrize("command", ["topics create", "worker"])
def test_an_untrusted_broker_certificate_stops_the_command_saying_tls_failed(
    secured_kafka: SecuredKafka, tmp_path: Path, command: str
):
    other_ca = issue_broker_certificates(tmp_path / "other-ca").ca_file
    settings = secured_kafka.settings(tmp_path / "var", ssl_cafile=other_ca)
    result = cxpulse(COMMANDS[command], settings_env(settings), timeout=REFUSAL_DEADLINE_S * 3)

    assert result.returncode == os.EX_CONFIG, output(result)
    error = error_line(result)
    assert error.startswith("cxpulse: Kafka TLS handshake failed"), error
    assert "CXPULSE_SSL_CAFILE" in error and "certificate verify failed" in error
    assert secured_kafka.password not in output(result)
