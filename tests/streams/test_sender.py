"""A failure to send outputs never crashes the agent and never loses the message (no Kafka)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import CollectorRegistry

import streams.sender
from streams.deadletters import Source
from streams.metrics import Metrics
from streams.pipeline import Outputs, Record
from streams.sender import FALLBACK_RECORD_BYTES, OutputSender
from streams.size_budget import DEFAULT_BUDGET, record_bytes
from streams.topics import Topic

SOURCE = Source("contacts", "cx.contacts", b"c-1", b'{"event_id": "e-1"}', 2, 40)


class FakeProducer:
    """Records what was sent; ``failures`` says how each send of a topic fails, in turn:
    ``("now", exc)`` raises from send (aiokafka's own size check), ``("later", exc)`` fails the
    delivery future (the broker's answer)."""

    def __init__(self) -> None:
        self.sent: list[Record] = []
        self.failures: dict[Topic, list[tuple[str, Exception]]] = {}

    async def produce(self, record: Record) -> asyncio.Future:
        delivery = asyncio.get_running_loop().create_future()
        pending = self.failures.get(record.topic)
        if pending:
            when, exc = pending.pop(0)
            if when == "now":
                raise exc
            delivery.set_exception(exc)
            return delivery
        self.sent.append(record)
        delivery.set_result("ok")
        return delivery


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def run(sender: OutputSender, *outputs: Outputs) -> None:
    async def send_all() -> None:
        for out in outputs:
            await sender.send(out, SOURCE)
        await asyncio.sleep(0)  # the deliveries' callbacks run
        await sender.drain()

    asyncio.run(send_all())


def outputs(*records: tuple[Topic, bytes, list[tuple[str, bytes]]]) -> Outputs:
    out = Outputs()
    for topic, value, headers in records:
        out.add(topic, b"k", value, headers)
    return out


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_dead_letter_the_producer_refuses_as_too_large_is_sent_truncated(metrics):
    producer = FakeProducer()
    refused = ProducerSendError("Error while sending")
    refused.__cause__ = MessageSizeTooLargeError("max_request_size")  # how Faust wraps aiokafka's check
    producer.failures[Topic.DEADLETTER] = [("now", refused)]
    original = b"x" * 900_000
    headers = [("cxpulse-reason", b"schema_violation"), ("cxpulse-error", b"event_id too long")]
    run(OutputSender(producer.produce, metrics, DEFAULT_BUDGET.output_record_bytes),
        outputs((Topic.DEADLETTER, original, headers)))  # fmt: skip
    (letter,) = producer.sent
    sent = dict(letter.headers)
    assert sent["cxpulse-reason"] == b"too_large"
    assert sent["cxpulse-original-size"] == b"900000"
    assert sent["cxpulse-original-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert record_bytes(letter.key, len(letter.value), letter.headers) <= FALLBACK_RECORD_BYTES
    assert count(metrics, "cxpulse_output_send_failures_total", topic="deadletter") == 1


def test_an_output_the_broker_refuses_dead_letters_its_input_once(metrics):
    producer = FakeProducer()
    producer.failures[Topic.NOTIFICATIONS] = [("later", KafkaTimeoutError()), ("now", ProducerSendError("down"))]
    out = outputs(
        (Topic.NOTIFICATIONS, b"n1", []), (Topic.NOTIFICATIONS, b"n2", []), (Topic.ALERTS, b"a1", [])
    )
    run(OutputSender(producer.produce, metrics, DEFAULT_BUDGET.output_record_bytes), out)
    assert sorted(r.topic for r in producer.sent) == [Topic.ALERTS, Topic.DEADLETTER]
    (letter,) = [r for r in producer.sent if r.topic == Topic.DEADLETTER]
    headers = dict(letter.headers)
    assert (letter.key, letter.value) == (SOURCE.key, SOURCE.value)  # the input, for replay
    assert headers["cxpulse-reason"] == b"processing_error"
    assert headers["cxpulse-exception-type"] in (b"faust.exceptions.ProducerSendError",
                                                 b"aiokafka.errors.KafkaTimeoutError")  # fmt: skip
    assert (headers["cxpulse-source-partition"], headers["cxpulse-source-offset"]) == (b"2", b"40")
    assert count(metrics, "cxpulse_events_rejected_total", stream="contacts", reason="processing_error") == 1
    assert count(metrics, "cxpulse_output_send_failures_total", topic="notifications") == 2


def test_a_dead_letter_that_cannot_be_sent_is_retried_until_it_is(metrics, monkeypatch):
    monkeypatch.setattr(streams.sender, "RETRY_FIRST_S", 0.001)
    producer = FakeProducer()
    producer.failures[Topic.DEADLETTER] = [("later", KafkaTimeoutError())] * 3
    run(OutputSender(producer.produce, metrics, DEFAULT_BUDGET.output_record_bytes),
        outputs((Topic.DEADLETTER, b"garbage", [("cxpulse-reason", b"invalid_json")])))  # fmt: skip
    (letter,) = producer.sent
    assert (letter.value, dict(letter.headers)["cxpulse-reason"]) == (b"garbage", b"invalid_json")
    assert count(metrics, "cxpulse_output_send_failures_total", topic="deadletter") == 3


def test_outputs_that_are_sent_need_nothing_else(metrics):
    producer = FakeProducer()
    run(OutputSender(producer.produce, metrics, DEFAULT_BUDGET.output_record_bytes),
        outputs((Topic.SIGNALS, b"[]", []), (Topic.DEADLETTER, b"x", [])))  # fmt: skip
    assert [r.topic for r in producer.sent] == [Topic.SIGNALS, Topic.DEADLETTER]
    assert count(metrics, "cxpulse_output_send_failures_total", topic="signals") == 0


def test_a_dead_letter_too_large_even_truncated_is_sent_as_headers_only(metrics):
    producer = FakeProducer()
    too_large = MessageSizeTooLargeError("the topic's max.message.bytes")
    producer.failures[Topic.DEADLETTER] = [("later", too_large), ("later", too_large)]
    original = b"z" * 500_000
    run(OutputSender(producer.produce, metrics, DEFAULT_BUDGET.output_record_bytes),
        outputs((Topic.DEADLETTER, original, [("cxpulse-reason", b"too_large")])))  # fmt: skip
    (letter,) = producer.sent
    headers = dict(letter.headers)
    assert letter.value == b"" and headers["cxpulse-original-size"] == b"500000"
    assert headers["cxpulse-original-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert count(metrics, "cxpulse_output_send_failures_total", topic="deadletter") == 2
