"""Learned and accumulated state owned by a partition, saved before every offset commit.

Per-key state lives in changelogged tables written as each event changes it. Some state is
not per key but per *partition*: the step partials a handler accumulates for the series owners,
a learned model, the series owners' detectors. Writing it to a changelog on every message would
cost a record per message; losing it on a crash would make a restarted worker answer
differently from one that never crashed. A checkpoint takes the middle road:

* The worker calls :meth:`Checkpoints.save` right before every offset commit (a Faust sensor's
  ``on_commit_initiated``; the periodic commit and the revoke-time commit of a rebalance both go
  through it). Each registered :class:`PartitionState` returns a snapshot of every partition
  this worker owns (or ``None`` when nothing changed), and the snapshots go to the changelogged
  ``checkpoints`` table, each in the changelog partition of the partition it belongs to.
  Faust flushes the producer before it commits offsets, so a committed offset is never ahead
  of the checkpoint: the snapshot covers every message processed so far, the committed offset
  is at or below the next one.
* After every assignment, once the tables are recovered, :meth:`Checkpoints.restore` hands each
  state the snapshot of every partition this worker now owns (``None``: start fresh). The
  worker then re-reads from the committed offset, so a state must remember the offset of the
  last message it applied and skip what it already holds; what it had emitted since its last
  snapshot may not have reached Kafka, so it should re-send that (idempotently).
* Partitions given away are forgotten (:meth:`PartitionState.forget`).

The cost: one table record per changed partition per commit interval, whatever the message rate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from faust.types import TP

log = logging.getLogger(__name__)


class PartitionState(Protocol):
    """State owned by one partition of one topic (see the module docstring for the contract)."""

    def snapshot(self, partition: int) -> bytes | None:
        """The partition's state as bytes, or None when unchanged since the last snapshot."""

    def restore(self, partition: int, data: bytes | None) -> None:
        """Continue from ``data`` (None: fresh) after an assignment and the tables' recovery."""

    def forget(self, partition: int) -> None:
        """The partition was given to another worker."""


@dataclass(frozen=True, slots=True)
class _Registration:
    name: str
    topic: str  # the Kafka topic whose partitions own the state
    state: PartitionState


class Checkpoints:
    """Saves and restores every registered :class:`PartitionState` through one table.

    ``table`` maps ``"<name>/<partition>"`` to bytes. In the worker it is a changelogged
    :class:`streams.tables.Table` (whose ``key_partitions`` routes each key to the changelog
    partition of the partition it belongs to); in tests a dict.
    """

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self._registrations: list[_Registration] = []
        self._owned: dict[str, set[int]] = {}

    def register(self, name: str, topic: str, state: PartitionState) -> None:
        if any(r.name == name for r in self._registrations):
            raise ValueError(f"checkpoint {name!r} registered twice")
        self._registrations.append(_Registration(name, topic, state))

    @staticmethod
    def key(name: str, partition: int) -> str:
        return f"{name}/{partition}"

    def owned(self, topic: str) -> set[int]:
        return set(self._owned.get(topic, ()))

    def assigned(self, assigned: Iterable[TP]) -> None:
        """A new assignment: remember what is owned, forget the states of what was given away."""
        now: dict[str, set[int]] = {}
        for tp in assigned:
            now.setdefault(tp.topic, set()).add(tp.partition)
        for registration in self._registrations:
            for partition in self._owned.get(registration.topic, set()) - now.get(registration.topic, set()):
                registration.state.forget(partition)
        self._owned = now

    def save(self) -> int:
        """Write every owned partition's changed state; returns how many snapshots were written."""
        written = 0
        routes = getattr(self.table, "key_partitions", None)
        for registration in self._registrations:
            for partition in sorted(self._owned.get(registration.topic, ())):
                data = registration.state.snapshot(partition)
                if data is None:
                    continue
                key = self.key(registration.name, partition)
                if routes is not None:
                    routes[key] = partition  # the changelog partition of the partition it belongs to
                self.table[key] = data
                written += 1
        return written

    def restore(self) -> None:
        """Hand every state the snapshot of each partition this worker owns (None: fresh)."""
        for registration in self._registrations:
            for partition in sorted(self._owned.get(registration.topic, ())):
                data = self.table.get(self.key(registration.name, partition))
                registration.state.restore(partition, data)


def save_before_commit(checkpoints: Checkpoints) -> Any:
    """A Faust sensor that saves the checkpoints at the start of every offset commit."""
    from faust.sensors import Sensor

    class CheckpointSensor(Sensor):
        def on_commit_initiated(self, consumer: Any) -> Any:
            try:
                checkpoints.save()
            except Exception:  # a failed save must not fail the commit; the next one retries
                log.exception("saving checkpoints failed; the commit goes on with the previous ones")
            return None

    return CheckpointSensor()
