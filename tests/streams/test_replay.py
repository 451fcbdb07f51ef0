"""``cxpulse replay``: its settings and its arguments (the Kafka run is in test_notifications_kafka)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from streams.cli import cli
from streams.exceptions import ConfigurationError
from streams.replay import default_group, replay_settings
from streams.settings import Settings


def test_a_replay_has_its_own_group_and_signals_topic_and_keeps_the_rest() -> None:
    live = Settings(app_id="cx", topic_signals="cx.signals")
    replay = replay_settings(live, "cx-replay-1")
    assert (replay.app_id, replay.topic_signals) == ("cx-replay-1", "cx.signals.cx-replay-1")
    assert replay.topic_series == "cx.series.cx-replay-1"  # the live series owners never see replayed partials
    assert replay.topic_notifications == live.topic_notifications and replay.topic_contacts == live.topic_contacts
    assert default_group(live, now=0.0) == "cx-replay-19700101T000000Z"


@pytest.mark.parametrize("group", ["cx", "bad name", "x" * 201, ""])
def test_a_replay_refuses_the_live_group_and_bad_names(group: str) -> None:
    with pytest.raises(ConfigurationError):
        replay_settings(Settings(app_id="cx"), group)


@pytest.mark.parametrize("args", [[], ["--from", "2026-01-01T00:00:00Z", "--from-beginning"]])
def test_replay_needs_exactly_one_starting_point(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["replay", *args])
    assert result.exit_code != 0
    assert "exactly one of --from TIME and --from-beginning" in result.output


def test_replay_rejects_a_time_without_offset() -> None:
    result = CliRunner().invoke(cli, ["replay", "--from", "2026-01-01T00:00:00", "--group", "g-1"])
    assert result.exit_code == 2
