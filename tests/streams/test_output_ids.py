"""The same world gives the same output ids: a refactor must not change what cxpulse emits.

``tests/data/golden_world_ids.json`` holds the alert and notification ids of
:data:`tests.inprocess.GOLDEN_WORLD`, recorded before the house move of issue 9. A change that
alters them is a behaviour change: regenerate the file on purpose and say why in the CHANGELOG.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.inprocess import GOLDEN_WORLD, run_world

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden_world_ids.json"


def test_golden_world_gives_the_recorded_ids() -> None:
    expected = orjson.loads(GOLDEN.read_bytes())
    got = run_world(GOLDEN_WORLD)
    assert got.notification_types == expected["notification_types"]
    assert sorted(got.notification_ids) == expected["notification_ids"]
    assert sorted(got.alert_ids) == expected["alert_ids"]
    # The world has one incident of each kind: every notification type and some alerts appear.
    assert set(got.notification_types) >= {"delivery_delayed", "repeat_contact", "detractor_followup"}
    assert got.alert_ids
