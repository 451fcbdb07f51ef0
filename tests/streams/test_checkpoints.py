"""Checkpoints: per-partition state saved before commits, restored after assignments."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest

from streams.checkpoints import Checkpoints, save_before_commit

TP = namedtuple("TP", "topic partition")


class Counter:
    """A partition state: a count per partition, dirty until snapshotted."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.forgotten: list[int] = []

    def add(self, partition: int) -> None:
        self.counts[partition] = self.counts.get(partition, 0) + 1
        self.dirty.add(partition)

    def snapshot(self, partition: int) -> bytes | None:
        if partition not in self.dirty:
            return None
        self.dirty.discard(partition)
        return str(self.counts.get(partition, 0)).encode()

    def restore(self, partition: int, data: bytes | None) -> None:
        self.counts[partition] = int(data) if data is not None else 0

    def forget(self, partition: int) -> None:
        self.forgotten.append(partition)
        self.counts.pop(partition, None)


class RoutedTable(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.key_partitions: dict[str, int] = {}


def test_only_changed_owned_partitions_are_saved_each_in_its_own_partition():
    table = RoutedTable()
    checkpoints = Checkpoints(table)
    state = Counter()
    checkpoints.register("counter", "cx.contacts", state)
    checkpoints.assigned([TP("cx.contacts", 0), TP("cx.contacts", 2), TP("cx.other", 1)])
    state.add(0)
    state.add(0)
    state.add(2)
    assert checkpoints.save() == 2
    assert table == {"counter/0": b"2", "counter/2": b"1"}
    assert table.key_partitions == {"counter/0": 0, "counter/2": 2}
    assert checkpoints.save() == 0  # nothing changed since


def test_a_new_owner_resumes_from_the_snapshot_and_the_old_one_forgets():
    table = RoutedTable()
    first, second = Counter(), Counter()
    old, new = Checkpoints(table), Checkpoints(table)
    old.register("counter", "t", first)
    new.register("counter", "t", second)
    old.assigned([TP("t", 0), TP("t", 1)])
    for _ in range(3):
        first.add(1)
    old.save()
    old.assigned([TP("t", 0)])  # partition 1 moves to the other worker
    assert first.forgotten == [1]
    new.assigned([TP("t", 1), TP("t", 3)])
    new.restore()
    assert second.counts == {1: 3, 3: 0}  # 3 never had a checkpoint: fresh


def test_registering_a_name_twice_is_refused():
    checkpoints = Checkpoints({})
    checkpoints.register("a", "t", Counter())
    with pytest.raises(ValueError, match="twice"):
        checkpoints.register("a", "t", Counter())


def test_the_sensor_saves_at_the_start_of_a_commit_and_never_fails_it(caplog):
    table: dict[str, Any] = {}
    checkpoints = Checkpoints(table)
    state = Counter()
    checkpoints.register("counter", "t", state)
    checkpoints.assigned([TP("t", 0)])
    state.add(0)
    sensor = save_before_commit(checkpoints)
    sensor.on_commit_initiated(consumer=None)
    assert table == {"counter/0": b"1"}

    class Broken(Counter):
        def snapshot(self, partition: int) -> bytes | None:
            raise RuntimeError("bug")

    checkpoints.register("broken", "t", Broken())
    sensor.on_commit_initiated(consumer=None)  # logged, not raised
    assert "saving checkpoints failed" in caplog.text
