"""Sending a message's outputs so that no failure loses the message silently.

The producer can refuse a record when it is sent (aiokafka's ``max_request_size`` check, which
Faust re-raises as ``ProducerSendError``) or later, when the broker answers (a topic whose
``max.message.bytes`` is below the size budget, a missing topic, a timeout after the producer's
own retries). Either way :class:`OutputSender` turns the failure into a record that can be sent:

- a dead letter that was too large is re-sent truncated to :data:`FALLBACK_RECORD_BYTES`
  (reason ``too_large``, original size and SHA-256 in headers: :func:`streams.deadletters.fit`);
- any other output (a signal, an alert, a notification) that could not be sent dead-letters the
  input message that produced it, reason ``processing_error`` with the exception's type, once per
  message, so it can be replayed;
- a dead letter that still cannot be sent is retried with backoff until it is, logged at ERROR
  each time: the agent waits rather than drop it (its lag grows and ``ConsumerLagGrowing`` fires).
  A failure the broker reports after the agent moved on is recovered before the agent takes its
  next message.

Every failure is counted in ``cxpulse_output_send_failures_total{topic}`` and logged with the
input's topic, partition and offset. The agent never sees an exception from here, so Faust
never restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from streams.deadletters import DeadLetter, Source, dead_letter, fit, processing_error
from streams.metrics import Metrics
from streams.pipeline import Outputs, Record
from streams.topics import Topic

logger = logging.getLogger(__name__)

#: A dead letter the broker refused as too large (its topic's limit disagrees with the budget) is
#: sent again truncated to this: small enough for any sane topic, enough to see what it was.
FALLBACK_RECORD_BYTES = 64 * 1024
#: Backoff between attempts at a dead letter that could not be sent (seconds, doubling).
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
#: Input messages remembered as already dead-lettered for a failed output (one dead letter each).
_REMEMBERED_FAILURES = 10_000

#: Sends one record; returns the delivery future (set when the broker acknowledged the record).
Produce = Callable[[Record], Awaitable["asyncio.Future[Any]"]]


def _too_large(exc: BaseException) -> bool:
    """The producer or the broker refused the record for its size (Faust wraps aiokafka's error)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MessageSizeTooLargeError):
            return True
        seen = seen.__cause__
    return False


class OutputSender:
    """Sends :class:`~streams.pipeline.Outputs`; never raises (except on cancellation)."""

    def __init__(self, produce: Produce, metrics: Metrics, limit: int) -> None:
        self._produce = produce
        self._metrics = metrics
        self._limit = limit  # the size budget's output_record_bytes
        self._pending: set[asyncio.Task[None]] = set()
        self._failed_sources: OrderedDict[tuple[str, int | None, int | None], None] = OrderedDict()

    async def send(self, out: Outputs, source: Source) -> None:
        """Send every record of ``out``, the outputs of input message ``source``."""
        # Back-pressure: recover the failures of earlier messages before taking on more.
        await self.drain()
        for record in out.records:
            try:
                delivery = await self._produce(record)
            except Exception as exc:
                await self._recover(record, source, exc)
            else:
                delivery.add_done_callback(partial(self._on_delivery, record, source))

    async def drain(self) -> None:
        """Wait until every failure reported so far is recovered."""
        while self._pending:
            await asyncio.gather(*self._pending)

    def _on_delivery(self, record: Record, source: Source, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or delivery.exception() is None:
            return
        exc = delivery.exception()
        assert exc is not None
        task = asyncio.ensure_future(self._recover(record, source, exc))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _recover(self, record: Record, source: Source, exc: BaseException) -> None:
        self._metrics.output_send_failures.labels(record.topic.value).inc()
        where = _position(source)
        if record.topic is Topic.DEADLETTER:
            logger.error("dead letter of %s could not be sent (%r); sending it again", where, exc)
            letter = DeadLetter(record.key, record.value, record.headers, _reason(record))
            if _too_large(exc):
                letter = fit(letter, min(self._limit, FALLBACK_RECORD_BYTES))
            await self._send_until_delivered(letter, where)
            return
        logger.error("%s output of %s could not be sent (%r); dead-lettering the input", record.topic, where, exc)
        if self._first_failure_of(source):
            await self.dead_letter_input(source, exc, f"sending its {record.topic.value} output")

    async def dead_letter_input(self, source: Source, exc: BaseException, where: str) -> None:
        """Dead-letter input message ``source`` that our code, or the producer, failed on ``where``:
        reason ``processing_error``, with the exception's type; counted like every dead letter."""
        letter = dead_letter(processing_error(exc, where, source.value), source, self._limit, exc)
        self._metrics.events_rejected.labels(source.stream, letter.reason).inc()
        self._metrics.deadletters.labels(source.stream).inc()
        await self._send_until_delivered(letter, _position(source))

    def _first_failure_of(self, source: Source) -> bool:
        """True once per input message: one dead letter however many of its outputs failed."""
        key = (source.topic, source.partition, source.offset)
        if key in self._failed_sources:
            return False
        self._failed_sources[key] = None
        while len(self._failed_sources) > _REMEMBERED_FAILURES:
            self._failed_sources.popitem(last=False)
        return True

    async def _send_until_delivered(self, letter: DeadLetter, where: str) -> None:
        delay = RETRY_FIRST_S
        while True:
            record = Record(Topic.DEADLETTER, letter.key, letter.value, letter.headers)
            try:
                await (await self._produce(record))
                return
            except asyncio.CancelledError:
                logger.error("dead letter of %s not written: the worker is stopping", where)
                raise
            except Exception as exc:
                self._metrics.output_send_failures.labels(Topic.DEADLETTER.value).inc()
                if _too_large(exc) and letter.value:
                    # The topic takes less than the budget says: the fallback size, then headers only.
                    shrunk = fit(letter, min(self._limit, FALLBACK_RECORD_BYTES))
                    letter = shrunk if len(shrunk.value) < len(letter.value) else fit(letter, 0)
                    continue
                logger.error("dead letter of %s still not sent (%r); retrying in %.1fs", where, exc, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)


def _position(source: Source) -> str:
    """Where an input message is, for the log: ``topic[partition]@offset``."""
    return f"{source.topic}[{source.partition}]@{source.offset}"


def _reason(record: Record) -> str:
    return dict(record.headers).get("cxpulse-reason", b"").decode() or "processing_error"
