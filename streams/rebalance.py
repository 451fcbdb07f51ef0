"""What a worker does when Kafka moves partitions: rebalances, restarts, scaling out and in.

On every new assignment (:meth:`Ownership.assigned`) the partitions the worker gained hold back
each handler's *safe* event time (:attr:`streams.event_time.Watermark.safe`) until they report:
their data may be far behind the worker's clock (a partition taken over after its worker died
waited a session timeout, and lags by that much), and orders or customers of that partition
must not be judged before it catches up. The partitions the worker no longer owns
leave it: they stop holding back each handler's event-time watermark, their consumer-lag gauge
children are removed (a gauge keeps its last value forever otherwise, so a drained fleet looked
stalled on the partitions a worker had given away), and their processed positions are forgotten.
The positions of the partitions it keeps are forgotten too: after a rebalance Faust seeks back to
the committed offsets, and until the first message arrives the lag is measured from there.

After the tables of the new assignment are recovered (Faust's ``Table.on_recover``, called after
every rebalance), every handler rebuilds the in-memory indexes of its detectors from exactly the
keys it now owns (:class:`streams.tables.Table` drops the others first).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from streams.event_time import Watermark
from streams.metrics import Metrics
from streams.topics import Store

if TYPE_CHECKING:
    from faust.types import TP

log = logging.getLogger(__name__)


class Indexed(Protocol):
    """A handler whose detectors index the keys of the stores it names."""

    event_clock: Watermark

    @property
    def stores(self) -> tuple[Store, ...]: ...

    def recovered(self) -> None: ...


class Ownership:
    """The input partitions this worker owns, and what changes when they move.

    ``clocks`` maps an input topic name to the watermark of the handler reading it.
    """

    def __init__(self, clocks: Mapping[str, Watermark], positions: dict[Any, int], metrics: Metrics) -> None:
        self.clocks = clocks
        self.positions = positions
        self.metrics = metrics
        self.owned: set[TP] = set()

    def assigned(self, assigned: Iterable[TP]) -> set[TP]:
        """A new assignment took effect; returns the input partitions that were given away."""
        now = {tp for tp in assigned if tp.topic in self.clocks}
        lost = self.owned - now
        for tp in now - self.owned:
            clock = self.clocks[tp.topic]
            clock.hold(tp.partition)  # its data may be behind the worker's clock
            # Counted from its assignment, before its first event: at start-up the partition
            # fetched first must not run the clock ahead of one not fetched yet (no-op once held).
            clock.assign((tp.partition,))
        for tp in lost:
            self.clocks[tp.topic].forget(tp.partition)
            with contextlib.suppress(KeyError):  # never reported (no highwater yet)
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self.positions.clear()
        self.owned = now
        if lost:
            log.info("partitions given away: %s", ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in lost)))
        return lost


def recover_callbacks(handlers: Iterable[Indexed]) -> dict[Store, list[Any]]:
    """For each store, the ``recovered`` hooks of the handlers whose detectors index it."""
    hooks: dict[Store, list[Any]] = {store: [] for store in Store}
    for handler in handlers:
        for store in handler.stores:
            if handler.recovered not in hooks[store]:
                hooks[store].append(handler.recovered)
    return hooks


def group_instance_id(instance_id: str, web_port: int) -> str | None:
    """Kafka's ``group.instance.id`` for this worker: None (dynamic membership) when empty.

    ``auto`` is the host name and the web port: stable across restarts of a worker on one host,
    distinct for two workers of one host (they cannot share a port).
    """
    if not instance_id:
        return None
    if instance_id == "auto":
        import socket

        return f"{socket.gethostname()}-{web_port}"
    return instance_id


def heartbeat_interval(session_timeout: float) -> float:
    """A fifth of the session timeout, at most Faust's default 3 s: five heartbeats may be lost."""
    return min(3.0, session_timeout / 5.0)
