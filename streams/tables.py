"""The worker's table class: every key stays in its own changelog partition, whoever touches it.

A ``faust.Table`` sends each write to the changelog partition of the *message being processed*.
cxpulse's detectors also touch keys of other partitions the worker owns: a deliveries message of
partition 0 advances event time, and the orders of partition 1 that fell due are re-checked,
updated or dropped then; the customers agent's hourly expiry deletes customers of every partition.
With plain Faust those writes and tombstones landed in the wrong changelog partition, so after a
rebalance the new owner of partition 1 restored stale orders (and re-sent their notifications
from the stale state) while the owner of partition 0 inherited foreign keys and deleted customers
came back. This table remembers the partition of every key (the partition of the message that
created it, or of the changelog record it was restored from) and routes its writes there.

After a rebalance it also drops from memory the keys of partitions this worker no longer owns
(Faust's memory store forgets only the keys it restored from a changelog, not those written
locally), *before* the recovery callbacks run, so every detector rebuilds its due-time index
from exactly the keys it owns (see :mod:`streams.rebalance`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
from faust.stores.memory import Store as MemoryStore
from faust.types import TP, EventT


class Table(faust.Table):
    """A ``faust.Table`` that knows each key's partition (``app.conf.Table`` of the worker)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: key -> changelog partition (= input partition of the messages that own the key)
        self.key_partitions: dict[Any, int] = {}

    def partition_for_key(self, key: Any) -> int | None:
        partition = self.key_partitions.get(key)
        if partition is None:
            # A new key: the partition of the message being processed, as Faust does.
            partition = super().partition_for_key(key)
            if partition is not None:
                self.key_partitions[key] = partition
        return partition

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        # aiokafka's metadata shows a changelog topic created moments before the worker started with
        # 0 partitions until its next refresh (up to 5 minutes); Faust then raised PartitionsMismatch
        # on every write, crashing the agent, whose messages were lost meanwhile. Check once known.
        if self.app.consumer.topic_partitions(self.changelog_topic_name):
            super()._verify_source_topic_partitions(source_topic)

    def on_key_del(self, key: Any) -> None:
        super().on_key_del(key)  # the tombstone goes to the key's own partition
        self.key_partitions.pop(key, None)

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        events = list(batch)
        for event in events:
            key = self._to_key(event.key)
            if event.message.value is None:
                self.key_partitions.pop(key, None)
            else:
                self.key_partitions[key] = event.message.partition
        super().apply_changelog_batch(events)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        # Collection.on_recovery_completed with forget_foreign_keys between its two steps.
        await self.data.on_recovery_completed(active_tps, standby_tps)
        self.forget_foreign_keys({tp.partition for tp in active_tps})
        await self.call_recover_callbacks()

    def forget_foreign_keys(self, partitions: set[int]) -> int:
        """Drop the local copy of keys outside ``partitions`` (no changelog record); return how many.

        Only the memory store needs it: a RocksDB store keeps one database per partition and
        already hides the partitions the worker does not own.
        """
        foreign = [key for key, partition in self.key_partitions.items() if partition not in partitions]
        for key in foreign:
            del self.key_partitions[key]
        if isinstance(self.data, MemoryStore):
            for key in foreign:
                self.data.pop(key, None)
        return len(foreign)
