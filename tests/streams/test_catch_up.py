"""Catch-up: a backlog consumed with one partition days ahead must give the outputs of live traffic.

In-process (the worker's handlers, no Kafka): the golden world on four partitions, once in
event-time order (live), once with partition 0 consumed entirely before the others, and once
split between two workers.
"""

from __future__ import annotations

import pytest

from tests.inprocess import GOLDEN_WORLD, Fleet, run_world, world_messages

PARTITIONS = 4


@pytest.fixture(scope="module")
def live_and_skewed():
    return run_world(GOLDEN_WORLD, partitions=PARTITIONS), run_world(GOLDEN_WORLD, partitions=PARTITIONS, ahead=0)


def test_rule_based_outputs_do_not_depend_on_the_interleaving(live_and_skewed) -> None:
    live, skewed = live_and_skewed
    # Per-key rules judged on the key's own time or on the watermark: exact.
    for kind in ("repeat_contact", "detractor_followup", "delivery_failed"):
        assert skewed.notification_types.get(kind) == live.notification_types.get(kind), kind


def test_delay_predictions_do_not_depend_on_the_interleaving(live_and_skewed) -> None:
    live, skewed = live_and_skewed
    # One transit model per deliveries partition, learnt and judged on that partition's own
    # sequence: the same delivery_delayed notifications, id for id.
    assert live.ids_by_type.get("delivery_delayed")
    assert skewed.ids_by_type.get("delivery_delayed") == live.ids_by_type.get("delivery_delayed")


def test_series_alerts_do_not_depend_on_the_interleaving(live_and_skewed) -> None:
    live, skewed = live_and_skewed
    # Series steps close when every partition passed them (streams/series.py): exact.
    assert live.alert_ids
    assert skewed.alert_ids == live.alert_ids


def test_copies_of_messages_change_no_output(live_and_skewed) -> None:
    live, _ = live_and_skewed
    # The Kafka catch-up test (test_fleet_kafka.py) skews consumption by following every message
    # of partitions 1-3 with two exact copies: the per-partition dedup must make them no-ops.
    fleet = Fleet(partitions=PARTITIONS)
    for message in world_messages(GOLDEN_WORLD, partitions=PARTITIONS):
        for _ in range(1 if message.partition == 0 else 3):
            fleet.feed(message)
    fleet.finish()  # the input ended: the customers agents release what they hold
    assert live.alert_ids and live.notification_ids
    assert fleet.result.alert_ids == live.alert_ids
    assert fleet.result.notification_ids == live.notification_ids


def test_every_notification_id_is_the_same_as_live(live_and_skewed) -> None:
    live, skewed = live_and_skewed
    # The customers agent decides in event-time order on its signals watermark (issue 10).
    assert live.ids_by_type.get("frustration_outreach")
    assert skewed.notification_ids == live.notification_ids


def test_two_workers_give_the_notifications_of_one(live_and_skewed) -> None:
    live, _ = live_and_skewed
    # cx.signals split between two workers by customer partition, progress to every partition.
    fleet = run_world(GOLDEN_WORLD, partitions=PARTITIONS, workers=2)
    assert fleet.notification_ids == live.notification_ids
    assert fleet.alert_ids == live.alert_ids
