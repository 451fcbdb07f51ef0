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
