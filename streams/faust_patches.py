"""Faust behaviour cxpulse corrects or builds on, pinned to the Faust version it was written for.

**The patch: commit what was acked before forgetting revoked partitions.** faust-streaming 0.15.3's
``Consumer.on_partitions_revoked`` drops its bookkeeping of the revoked partitions (acked
offsets included) *before* it calls the app's revoke handler, whose job is to wait for the agents
and commit what they acked. aiokafka rebalances eagerly: every partition a worker holds is revoked
at every rebalance, so that commit found nothing to commit, and everything processed since the last
periodic commit was processed again after each rebalance, by the same worker or by the new owner
(measured: hundreds to thousands of messages per rebalance under load, since a periodic commit
waits for the producer to drain and can take tens of seconds). :func:`on_partitions_revoked` does
the same steps in the order that keeps them: the app's handler first (the partitions are still
assigned, so the commit goes through), the bookkeeping cleanup after (so no later commit can carry a
stale offset for a partition that now belongs to another worker). The app's handler commits only if
no periodic commit is in flight (``Consumer.commit`` then just waits for it, and the in-flight
commit predates the last acks), so the patch commits once more after it.

**The patch: a full flush of the producer buffer waits for every message buffered when it was called.** Table writes
go through Faust's ``ProducerBuffer`` (a queue a background task hands to the Kafka client one by
one). Faust 0.15.3's ``ProducerBuffer.flush`` returns as soon as 0.1 s pass without a message
leaving the queue, buffer empty or not, and does not count the message the task is handing over.
Faust flushes the producer right before it commits offsets (periodic, revoke-time and shutdown
commits), so on a loaded machine offsets were committed while changelog writes of the committed
messages were still queued: a worker taking the partitions over after a rebalance (or the same
worker after ``kill -9``) recovered the tables without those writes and never re-processed their
messages; a customer's contact history, frustration signals or policy state was silently lost
(found in the 1 -> 3 -> 1 scale-out test: a detractor follow-up without its contact's reason, a
lost delivery-failed and a lost outreach notification). :func:`flush_buffer` waits for the queue
and the message in hand that were there when it was called (the background task runs
:func:`send_pending`, which counts them).

**The guard: never commit past a message that was not processed.** After a rebalance Faust seeks
every partition back to its committed offset (records fetched while the flow was stopped are
dropped). When the assignment changes during that seek, aiokafka raises and Faust only logs it
("exception performing seek when flow not active"): the partitions not yet sought keep a fetch
position past records nobody processed. Faust then sees a gap in the offsets and, as it does for
compacted topics, counts the gap as acked, or, with its committed offset unknown after the failed
seek, commits past it: those records were lost for good (found in the fleet test, 1 -> 3 -> 2
workers: a few thousand contacts of one partition, with their detractor and repeat-contact
candidates). :func:`_drain_messages` keeps the next offset each partition must deliver (the group's
committed offset, fetched from the broker, for the first message after an assignment); a message
past it on a topic with acks (the agents' topics, never compacted; changelogs are recovered
elsewhere) makes it seek back there and drop what it fetched. The same gap seen again right after
such a seek is a real one (records deleted by retention, transaction markers) and is accepted.

**What :class:`streams.tables.Table` builds on**: how a ``faust.Table`` routes a changelog write
(``on_key_set``/``on_key_del`` through ``partition_for_key``), checks that a changelog topic has
as many partitions as its source topic, applies a changelog batch, and calls the recovery
callbacks after a rebalance.

:data:`PINNED` holds a SHA-256 of the source of every Faust function replaced or relied on here;
``tests/streams/test_faust_patches.py`` fails when an upgrade changes any of them, and
:func:`apply` leaves Faust alone (and says so in the log) rather than patch a function it does not
know.

**The speed-up: no task race per message while flow is active.** Faust's
``Consumer._drain_messages`` hands every fetched message to the conductor through
``wait_first(callback(message), suspend_flow.wait())``, which creates four tasks and an
``asyncio.wait`` per message (about 22 µs here) so that a rebalance (``stop_flow``) can interrupt a
callback blocked on a full stream buffer. Almost every callback finishes without blocking:
:func:`_drain_messages` runs it one step inline and only when it actually waits (a full buffer)
does it race the rest against ``suspend_flow`` exactly as Faust does; when flow is already
suspended it uses Faust's race unchanged. Everything else in the loop is Faust's code, verbatim.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any, cast

import faust
from faust.tables.base import Collection
from faust.tables.table import Table as FaustTable
from faust.transport.consumer import CONSUMER_FETCHING, CONSUMER_PARTITIONS_REVOKED, Consumer
from faust.transport.producer import ProducerBuffer
from faust.utils.tracing import traced_from_parent_span
from mode import Service

log = logging.getLogger(__name__)

FAUST_VERSION = "0.15.3"

#: "module:qualname" -> SHA-256 of ``inspect.getsource`` of the function as Faust ships it.
PINNED: dict[str, str] = {
    "faust.transport.consumer:Consumer.on_partitions_revoked": (
        "d04b7ae72c6fc206924a2879d6c90dd383f3e8ba6f4b10a19ca99a921eb8f4db"
    ),
    "faust.transport.consumer:Consumer._drain_messages": (
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
    ),
    "faust.tables.base:Collection._verify_source_topic_partitions": (
        "6814da56b0d83f930ebb2c921b05f5344d6122199e19c101c3a58e6320050ce9"
    ),
    "faust.tables.base:Collection.partition_for_key": (
        "3b2291811b8dd791cdd0e690b2b09d966a4e961e2a2861182241195696393bed"
    ),
    "faust.tables.base:Collection.apply_changelog_batch": (
        "b980a78d3ae9b1e87f2d3fb63e0dcd2671341a1e60ea5233859d6bdd699d3029"
    ),
    "faust.tables.base:Collection.on_recovery_completed": (
        "b1526fb39ea0e77e783b26059d2951a93f701405534cb667316553742215e87a"
    ),
    "faust.tables.table:Table.on_key_set": (
        "a370e35ca55c2c7e36e93f0d4b485927c32d49199043cab2314572846184dd94"
    ),
    "faust.tables.table:Table.on_key_del": (
        "4f2900b2f9d24a080d5cbc9eaa1f5566f1d11e56916e79b02f079c52f4751053"
    ),
    "faust.transport.producer:ProducerBuffer.flush": (
        "26fbebb124ad9c9890f19b4615585cf3eda102b61203e6aa885d3fabfda9b157"
    ),
    "faust.transport.producer:ProducerBuffer.flush_atmost": (
        "4966e8c5f9b42eb97abe3f93cbc9bc566a22bdea01ae5328c5a6593414820323"
    ),
    "faust.transport.producer:ProducerBuffer._send_pending": (
        "4a9d5f932b56bc6842151bfc868aec1570d53cab7ff129ece408d966ac7f7da8"
    ),
    "faust.transport.producer:ProducerBuffer._handle_pending": (
        "78d648030fd21016cc0d82ae6cc6df1cb474273195b10f133ea0ef9ac9d35f0c"
    ),
}

_OWNERS: dict[str, type] = {
    "faust.transport.consumer:Consumer": Consumer,
    "faust.transport.producer:ProducerBuffer": ProducerBuffer,
    "faust.tables.base:Collection": Collection,
    "faust.tables.table:Table": FaustTable,
}
_ORIGINAL_REVOKED = Consumer.on_partitions_revoked
_ORIGINAL_BUFFER = {name: getattr(ProducerBuffer, name) for name in ("flush", "_send_pending")}
_ORIGINAL_DRAIN = Consumer._drain_messages


def pinned_function(name: str) -> Callable[..., Any]:
    """The function Faust ships under ``name`` ("module:Class.method"), before any patch."""
    if name == "faust.transport.consumer:Consumer.on_partitions_revoked":
        return _ORIGINAL_REVOKED
    if name == "faust.transport.consumer:Consumer._drain_messages":
        return _ORIGINAL_DRAIN
    owner, _, method = name.rpartition(".")
    if owner == "faust.transport.producer:ProducerBuffer" and method in _ORIGINAL_BUFFER:
        return _ORIGINAL_BUFFER[method]
    function = getattr(_OWNERS[owner], method)
    return getattr(function, "fun", function)  # a mode ``Service.task`` wraps its function


def source_digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def drifted() -> list[str]:
    """Names in :data:`PINNED` whose Faust source is not the one the patch was written against."""
    return [name for name, digest in PINNED.items() if source_digest(pinned_function(name)) != digest]


@Service.transitions_to(CONSUMER_PARTITIONS_REVOKED)
async def on_partitions_revoked(self: Consumer, revoked: set[Any]) -> None:
    """``Consumer.on_partitions_revoked`` of Faust 0.15.3 with its two steps in the safe order."""
    span = self.app._start_span_from_rebalancing("on_partitions_revoked")
    T = traced_from_parent_span(span)
    with span:
        if self._active_partitions is not None:
            self._active_partitions.difference_update(revoked)
        self._paused_partitions.difference_update(revoked)
        try:
            # Waits for the agents, then commits their acks: the revoked partitions are still ours.
            await T(self._on_partitions_revoked, partitions=revoked)(revoked)
            if not self.app.should_stop:
                # That commit is skipped when a periodic one is in flight (Consumer.commit only waits
                # for it), and the in-flight one predates the last acks: commit once it is done.
                await self.maybe_wait_for_commit_to_finish()
                await self.commit()
        finally:
            for tp in revoked:
                self._gap.pop(tp, None)
                self._acked.pop(tp, None)
                self._acked_index.pop(tp, None)
                self._read_offset.pop(tp, None)
                self._committed_offset.pop(tp, None)
                _next_offsets(self).pop(tp, None)


#: How long :func:`flush_buffer` waits for one message before it looks again (never gives up).
FLUSH_POLL_S = 1.0


async def send_pending(self: ProducerBuffer, fut: Any) -> None:
    """``ProducerBuffer._send_pending``, counting the message in hand and every message handed over."""
    self._cxpulse_in_hand = getattr(self, "_cxpulse_in_hand", 0) + 1  # type: ignore[attr-defined]
    try:
        await fut.message.channel.publish_message(fut, wait=False)
    finally:
        self._cxpulse_in_hand -= 1  # type: ignore[attr-defined]
        self._cxpulse_sent = getattr(self, "_cxpulse_sent", 0) + 1  # type: ignore[attr-defined]


async def flush_buffer(self: ProducerBuffer) -> None:
    """``ProducerBuffer.flush`` that returns once every message buffered *when it was called* reached
    the client (the caller, ``Producer.flush``, then waits for the client to deliver them).

    Not "until the buffer is empty": agents keep writing while a periodic commit flushes, and under
    sustained load the buffer is never empty (measured: commits held for 80 s). The buffer is FIFO,
    so the messages present at the call are sent once as many more have been handed over. A buffer
    that is not running cannot drain: as Faust, raise rather than wait forever.
    """
    app: Any = self.app
    if app is not None and app.conf.producer_threaded:
        return await _ORIGINAL_BUFFER["flush"](self)  # not used by cxpulse; Faust's own behaviour
    target = getattr(self, "_cxpulse_sent", 0) + getattr(self, "_cxpulse_in_hand", 0) + self.size
    while getattr(self, "_cxpulse_sent", 0) < target:
        if self.state != "running":  # stopping: nothing drains any more (Faust's behaviour)
            if self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            return
        self.message_sent.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.message_sent.wait(), timeout=FLUSH_POLL_S)


class _Resumed:
    """Awaiting it finishes a coroutine that was already stepped once and is waiting on ``pending``.

    The trampoline ``await`` itself runs: the task waits on what the coroutine waits on, then
    resumes it (or throws the task's cancellation into it), until it returns.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                yield pending
            except BaseException as exc:  # cancellation (rebalance, stop): the callback sees it
                try:
                    pending = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coro.send(None)
                except StopIteration as done:
                    return done.value


async def _finish(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Resumed(coro, pending)


async def _deliver(self: Consumer, message: Any) -> None:
    """``await wait_first(callback(message), suspend_flow.wait())`` without its four tasks when
    the callback does not block (the common case); Faust's race when it does."""
    # Faust types the callback as returning an Awaitable; it is the conductor's coroutine function.
    coro = cast(Coroutine[Any, Any, Any], self.callback(message))
    if self.suspend_flow.is_set():
        await self.wait_first(coro, self.suspend_flow.wait())
        return
    try:
        pending = coro.send(None)
    except StopIteration:
        return
    except BaseException:
        coro.close()
        raise
    # Blocked (a full stream buffer): a rebalance must be able to interrupt it, as in Faust.
    await self.wait_first(_finish(coro, pending), self.suspend_flow.wait())


def _next_offsets(consumer: Consumer) -> dict[Any, int]:
    """Per partition: the next offset this worker must deliver (see :func:`_in_sequence`)."""
    offsets = consumer.__dict__.get("_cxpulse_next_offsets")
    if offsets is None:
        offsets = consumer.__dict__["_cxpulse_next_offsets"] = {}
    return cast(dict[Any, int], offsets)


async def _group_committed(consumer: Consumer, tp: Any) -> int | None:
    """The group's committed offset of ``tp``, asked of the broker (None: none, or no answer)."""
    try:
        from aiokafka.structs import TopicPartition

        # The aiokafka consumer runs on Faust's consumer thread, in that thread's event loop.
        thread = consumer._thread  # type: ignore[attr-defined]
        client = thread._ensure_consumer()
        committed = await thread.call_thread(client.committed, TopicPartition(tp.topic, tp.partition))
    except Exception as exc:  # a guard must not stop the consumer: without an answer, trust Faust
        log.debug("committed offset of %s unknown: %r", tp, exc)
        return None
    return committed if isinstance(committed, int) and committed >= 0 else None


async def _in_sequence(consumer: Consumer, tp: Any, offset: int) -> bool:
    """False (after seeking ``tp`` back) when ``offset`` is past the next offset to deliver."""
    next_offsets = _next_offsets(consumer)
    expected = next_offsets.get(tp)
    if expected is None:
        # The first message since the assignment: it must be the one the group committed.
        expected = await _group_committed(consumer, tp)
        if expected is None:
            return True
        next_offsets[tp] = expected
    if offset <= expected:
        return True
    retried = consumer.__dict__.setdefault("_cxpulse_reseeks", {})
    if retried.get(tp) == expected:
        log.warning("offsets %s-%s of %s are gone (retention or markers): going on at %s",
                    expected, offset - 1, tp, offset)  # fmt: skip
        retried.pop(tp, None)
        return True
    retried[tp] = expected
    log.warning("%s fetched from %s while %s is the next to process (a seek after a rebalance "
                "failed): seeking back", tp, offset, expected)  # fmt: skip
    await consumer.seek(tp, expected)
    return False


async def _drain_messages(self: Consumer, fetcher: Any) -> None:  # pragma: no cover
    """Faust 0.15.3's ``Consumer._drain_messages``, the per-message ``wait_first`` replaced by
    :func:`_deliver`, and every message of an agent's topic checked to follow the last one
    delivered (:func:`_in_sequence`)."""
    getmany = self.getmany
    consumer_should_stop = cast(Service, self)._stopped.is_set
    fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    next_offsets = _next_offsets(self)

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            reseeking: set[Any] = set()

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    if tp in reseeking:
                        continue  # fetched before the seek back: dropped, read again after it
                    expected = next_offsets.get(tp)
                    if (
                        (expected is None or offset > expected)
                        and acks_enabled_for(message.topic)
                        and not await _in_sequence(self, tp, offset)
                    ):
                        reseeking.add(tp)
                        continue
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await _deliver(self, message)
                        set_read_offset(tp, offset)
                        next_offsets[tp] = offset + 1
                    else:
                        self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def apply() -> bool:
    """Patch Faust once; False (and a log line) when this Faust is not the one pinned."""
    if Consumer.on_partitions_revoked is on_partitions_revoked:
        return True
    stale = drifted()
    if faust.__version__ != FAUST_VERSION or stale:
        log.error(
            "faust %s is not the pinned %s (changed: %s): the revoke-commit patch is NOT applied, "
            "so every rebalance re-processes what was acked since the last commit",
            faust.__version__, FAUST_VERSION, ", ".join(stale) or "-",
        )  # fmt: skip
        return False
    Consumer.on_partitions_revoked = on_partitions_revoked  # type: ignore[method-assign]
    ProducerBuffer.flush = flush_buffer  # type: ignore[method-assign]
    ProducerBuffer._send_pending = send_pending  # type: ignore[method-assign]
    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    return True


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The next offset the group will read in ``tp``, as this worker's consumer knows it.

    Faust keeps it (``_committed_offset``) after each commit and after the seek that follows an
    assignment; there is no public accessor.
    """
    offsets = getattr(consumer, "_committed_offset", None)
    return offsets.get(tp) if offsets is not None else None
