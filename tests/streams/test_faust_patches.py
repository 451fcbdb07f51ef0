"""The Faust patch (``streams/faust_patches.py``) is pinned to the Faust it was written for.

An upgrade that changes any function the patch replaces or relies on fails here: read the new
Faust code, redo the patch (or drop it if Faust fixed the bug), then record the new digests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP
from mode import Service
from mode.utils.locks import Event

from streams import faust_patches
from streams.faust_patches import FAUST_VERSION, PINNED, drifted, on_partitions_revoked, pinned_function, source_digest


def test_faust_is_the_version_the_patch_was_written_for() -> None:
    assert faust.__version__ == FAUST_VERSION


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_faust_source_is_unchanged(name: str) -> None:
    assert source_digest(pinned_function(name)) == PINNED[name], (
        f"Faust's {name} changed: review streams/faust_patches.py and streams/tables.py against it"
    )


def test_apply_patches_the_consumer_once() -> None:
    from faust.transport.consumer import Consumer

    assert not drifted()
    assert faust_patches.apply() and faust_patches.apply()
    assert Consumer.on_partitions_revoked is on_partitions_revoked


class _Diag:
    def set_flag(self, flag: str) -> None: ...

    def unset_flag(self, flag: str) -> None: ...


class _Consumer:
    """The parts of a Faust consumer that ``on_partitions_revoked`` touches, recording what the
    app's revoke handler and the commits see."""

    def __init__(self, app: faust.App, tps: list[TP]) -> None:
        self.app = app
        self.diag = _Diag()
        self._active_partitions = set(tps)
        self._paused_partitions: set[TP] = set()
        self._gap: dict[TP, Any] = {}
        self._acked = {tp: [10, 11, 12] for tp in tps}
        self._acked_index = {tp: {10, 11, 12} for tp in tps}
        self._read_offset = dict.fromkeys(tps, 13)
        self._committed_offset = dict.fromkeys(tps, 10)
        self.seen: list[tuple[str, set[TP]]] = []

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Faust's App._on_partitions_revoked: wait for the agents, then commit what they acked.
        await self.commit()

    async def maybe_wait_for_commit_to_finish(self) -> bool:
        return False

    async def commit(self) -> None:
        self.seen.append(("commit", {tp for tp, acked in self._acked.items() if acked}))


def test_revoke_commits_what_was_acked_then_forgets_the_partitions() -> None:
    tps = [TP("t.deliveries", 0), TP("t.deliveries", 1)]
    app = faust.App("patch-test", broker="kafka://127.0.0.1:1")
    original, patched = _Consumer(app, tps), _Consumer(app, tps)
    asyncio.run(pinned_function("faust.transport.consumer:Consumer.on_partitions_revoked")(original, {tps[0]}))
    asyncio.run(on_partitions_revoked(patched, {tps[0]}))  # type: ignore[arg-type]
    # Faust 0.15.3 forgets the acked offsets first: the revoke-time commit has nothing of tps[0].
    assert original.seen == [("commit", {tps[1]})]
    # Patched: the commit carries them (and once more after an in-flight periodic commit).
    assert patched.seen == [("commit", set(tps)), ("commit", set(tps))]
    for consumer in (original, patched):
        assert tps[0] not in consumer._acked and tps[0] not in consumer._committed_offset
        assert consumer._active_partitions == {tps[1]} and tps[1] in consumer._acked


def test_a_full_flush_of_the_producer_buffer_waits_for_every_buffered_message() -> None:
    """Faust flushes the buffer right before committing offsets: a flush that returns early lets the
    offsets of messages whose table writes are still queued be committed (their state is lost to
    whoever recovers the table next)."""
    import types

    from faust.transport.producer import ProducerBuffer

    assert faust_patches.apply()
    published: list[Any] = []

    class SlowChannel:
        async def publish_message(self, fut: Any, wait: bool = False) -> None:
            await asyncio.sleep(0.25)  # a loaded machine, or a client waiting for buffer space
            published.append(fut)

    async def flushed(flush: Any) -> int:
        """Messages handed to the client when ``flush`` returns, of 3 buffered."""
        published.clear()
        buffer = ProducerBuffer()
        buffer.app = faust.App("flush-unit")
        await buffer.start()
        try:
            for _ in range(3):
                buffer.put(types.SimpleNamespace(message=types.SimpleNamespace(channel=SlowChannel())))  # type: ignore[arg-type]
            await flush(buffer)
            done = len(published)
            while buffer.size or len(published) < 3:  # let the rest drain before stopping
                await asyncio.sleep(0.05)
            return done
        finally:
            await buffer.stop()

    faust_flush = faust_patches._ORIGINAL_BUFFER["flush"]
    assert asyncio.run(flushed(faust_flush)) < 3  # Faust 0.15.3: gives up after 0.1 s without progress
    assert asyncio.run(flushed(ProducerBuffer.flush)) == 3


def test_a_flush_waits_for_what_was_buffered_when_called_not_for_an_empty_buffer() -> None:
    """Agents keep writing while a periodic commit flushes: waiting for an empty buffer held commits
    for as long as the load lasted."""
    import types

    from faust.transport.producer import ProducerBuffer

    assert faust_patches.apply()
    published: list[Any] = []

    class SlowChannel:
        async def publish_message(self, fut: Any, wait: bool = False) -> None:
            await asyncio.sleep(0.05)
            published.append(fut)

    def message() -> Any:
        return types.SimpleNamespace(message=types.SimpleNamespace(channel=SlowChannel()))

    async def scenario() -> tuple[list[Any], int]:
        buffer = ProducerBuffer()
        buffer.app = faust.App("flush-unit-busy")
        await buffer.start()
        before = [message() for _ in range(3)]
        for fut in before:
            buffer.put(fut)

        async def busy_agent() -> None:
            while True:  # faster than the buffer drains
                buffer.put(message())
                await asyncio.sleep(0.01)

        agent = asyncio.create_task(busy_agent())
        try:
            await asyncio.wait_for(buffer.flush(), timeout=60)  # a guard against hanging, not a measure
            return [fut for fut in before if fut in published], buffer.size
        finally:
            agent.cancel()
            buffer.pending = asyncio.Queue()  # drop the rest: this buffer is thrown away
            await buffer.stop()

    sent_before, left = asyncio.run(scenario())
    assert len(sent_before) == 3  # everything buffered before the call was handed over
    assert left > 0  # and it did not wait for the agent's later writes


class _Draining(Service):
    """The parts of a Faust consumer that the patched per-message delivery touches."""

    def __init__(self, callback: Any) -> None:
        super().__init__()
        self.callback = callback
        self.suspend_flow = Event()


def _tasks_created_by(consumer: _Draining, messages: list[int]) -> int:
    """Deliver ``messages`` on a fresh loop; how many tasks the deliveries created."""
    created = 0

    async def main() -> None:
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop: Any, c: Any, **kw: Any) -> Any:
            nonlocal created
            created += 1
            return factory(loop, c, **kw) if factory else asyncio.Task(c, loop=loop, **kw)

        loop.set_task_factory(counting)
        for message in messages:
            await faust_patches._deliver(consumer, message)  # type: ignore[arg-type]
        loop.set_task_factory(factory)  # asyncio.run's own shutdown tasks are not counted

    asyncio.run(main())
    return created


def test_a_callback_that_does_not_block_runs_inline_without_tasks() -> None:
    delivered: list[int] = []

    async def callback(message: int) -> None:
        delivered.append(message)

    created = _tasks_created_by(_Draining(callback), [0, 1, 2])
    assert delivered == [0, 1, 2] and created == 0


def test_a_blocked_callback_finishes_when_unblocked() -> None:
    steps: list[str] = []

    async def callback(message: int) -> None:
        steps.append("start")
        await asyncio.sleep(0.01)  # a full stream buffer that drains
        steps.append("done")

    created = _tasks_created_by(_Draining(callback), [1])
    assert steps == ["start", "done"] and created > 0  # Faust's race, only when it blocked


def test_a_blocked_callback_is_interrupted_when_flow_is_suspended() -> None:
    steps: list[str] = []

    async def callback(message: int) -> None:
        steps.append("start")
        try:
            await asyncio.Event().wait()  # a buffer that never drains
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    async def run() -> None:
        consumer = _Draining(callback)
        delivery = asyncio.ensure_future(faust_patches._deliver(consumer, 1))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()  # a rebalance stops the flow: Faust gives up on the callback
        await asyncio.wait_for(delivery, 5)

    asyncio.run(run())
    assert steps == ["start", "cancelled"]


def test_an_error_in_the_callback_propagates() -> None:
    async def callback(message: int) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError):
        asyncio.run(faust_patches._deliver(_Draining(callback), 1))  # type: ignore[arg-type]


class _Seeking:
    """The parts of a Faust consumer :func:`faust_patches._in_sequence` uses: the group's committed
    offsets (asked of the broker) and ``seek``, recorded."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.seeks: list[tuple[TP, int]] = []
        consumer = self

        class _Client:
            async def committed(self, tp: Any) -> int | None:
                return consumer.committed[TP(tp.topic, tp.partition)]

        class _Thread:
            def _ensure_consumer(self) -> _Client:
                return _Client()

            async def call_thread(self, method: Any, *args: Any) -> Any:
                return await method(*args)  # Faust runs it on the consumer thread's loop

        self._thread = _Thread()

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def _sequence(consumer: _Seeking, tp: TP, offsets: list[int]) -> list[bool]:
    """Deliver ``offsets`` as the drain loop does; which ones go on to the agent."""

    async def run() -> list[bool]:
        delivered = []
        for offset in offsets:
            ok = await faust_patches._in_sequence(consumer, tp, offset)  # type: ignore[arg-type]
            if ok:
                faust_patches._next_offsets(consumer)[tp] = offset + 1  # type: ignore[arg-type]
            delivered.append(ok)
        return delivered

    return asyncio.run(run())


def test_a_partition_resuming_past_its_committed_offset_is_sought_back() -> None:
    tp = TP("t.contacts", 2)
    consumer = _Seeking({tp: 100})
    # A failed seek after a rebalance left the fetch position at 140: 100-139 were never processed.
    assert _sequence(consumer, tp, [140]) == [False]
    assert consumer.seeks == [(tp, 100)]
    assert _sequence(consumer, tp, [100, 101, 102]) == [True, True, True]


def test_a_skip_in_the_middle_is_sought_back_and_a_real_gap_accepted_once_confirmed() -> None:
    tp = TP("t.contacts", 0)
    consumer = _Seeking({tp: 0})
    assert _sequence(consumer, tp, [0, 1, 5]) == [True, True, False]
    assert consumer.seeks == [(tp, 2)]
    # Fetched again from 2, the broker answers 5 again: 2-4 are gone (retention), go on.
    assert _sequence(consumer, tp, [5, 6]) == [True, True]
    assert consumer.seeks == [(tp, 2)]


def test_without_a_committed_offset_the_first_message_is_trusted() -> None:
    tp = TP("t.contacts", 1)
    consumer = _Seeking({tp: None})  # a new group (or no answer): auto.offset.reset decides
    assert _sequence(consumer, tp, [7, 8]) == [True, True]
    assert not consumer.seeks


def test_revoking_a_partition_forgets_its_next_offset() -> None:
    tps = [TP("t.deliveries", 0), TP("t.deliveries", 1)]
    app = faust.App("patch-test", broker="kafka://127.0.0.1:1")
    consumer = _Consumer(app, tps)
    faust_patches._next_offsets(consumer)[tps[0]] = 13  # type: ignore[arg-type]
    faust_patches._next_offsets(consumer)[tps[1]] = 13  # type: ignore[arg-type]
    asyncio.run(on_partitions_revoked(consumer, {tps[0]}))  # type: ignore[arg-type]
    assert faust_patches._next_offsets(consumer) == {tps[1]: 13}  # type: ignore[arg-type]
