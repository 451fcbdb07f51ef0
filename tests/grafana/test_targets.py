"""The board targets (grafana/targets.py) and the alert rules (deploy/prometheus/rules/alerts.yml)
agree: an alert fires where its board panel turns red, and the numbers its text quotes are the
targets'. Changing a threshold on one side only fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from grafana import targets
from grafana.targets import Target

ALERTS_FILE = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "alerts.yml"
#: ``{name in grafana/targets.py: target}`` for the targets an alert watches (the names are the test
#: ids: alert names would not do, ``-k "not live"`` deselects any "Delivery").
LINKED = {name: t for name, t in vars(targets).items() if isinstance(t, Target) and t.alert}

#: Alerts with no traffic light on a board: their thresholds live in alerts.yml alone.
ALERTS_WITHOUT_A_BOARD_TARGET = {
    "ComplaintSpike",  # an open detector episode, not a level
    "RageClickStorm",  # the boards chart rage clicks without a threshold
    "CxpulseWorkerDown",
    "CxpulseWorkersAbsent",
    "KafkaUnreachable",  # a 0/1 probe per worker, not a level
    "NoEventsArriving",
    "CxpulseProcessingErrors",  # any processing_error at all: no level to draw
}

#: ``<op> <number>``; an alert's first comparison is its threshold, later ones (after ``and``)
#: are volume guards.
COMPARISON = re.compile(r"(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)")
NUMBER = r"(-?\d+(?:\.\d+)?)(%?)"
QUOTED_GOAL = re.compile(rf"\btarget {NUMBER}")
#: "under 3.5", "above 10%", "threshold 5" (not "over", "more than": durations use them too).
QUOTED_BAD = re.compile(rf"\b(?:under|above|threshold) {NUMBER}")


def _alert_rules() -> dict[str, dict]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _alert_texts() -> dict[str, str]:
    """Each alert's lines in alerts.yml, its comments included."""
    parts = re.split(r"^\s*- alert: (\w+)\s*$", ALERTS_FILE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _quoted(pattern: re.Pattern[str], text: str) -> list[float]:
    return [float(n) / 100 if percent else float(n) for n, percent in pattern.findall(text)]


@pytest.mark.parametrize("name", sorted(LINKED))
def test_alert_fires_where_the_board_turns_red(name: str) -> None:
    target = LINKED[name]
    rules = _alert_rules()
    assert target.alert in rules, f"{target.alert} is not in {ALERTS_FILE.name}"
    match = COMPARISON.search(rules[target.alert]["expr"])
    assert match, rules[target.alert]["expr"]
    op, threshold = match.group(1), float(match.group(2))
    assert threshold == target.bad, f"{target.alert} fires at {threshold}, the boards turn red at {target.bad}"
    assert op in (("<", "<=") if target.higher_is_better else (">", ">=")), f"{target.alert}: {op}"


@pytest.mark.parametrize("name", sorted(LINKED))
def test_alert_text_quotes_the_targets(name: str) -> None:
    target = LINKED[name]
    text = _alert_texts()[target.alert]
    assert all(v == pytest.approx(target.goal) for v in _quoted(QUOTED_GOAL, text)), text
    assert all(v == pytest.approx(target.bad) for v in _quoted(QUOTED_BAD, text)), text


def test_the_quote_patterns_find_the_quotes() -> None:
    """Keeps the test above from passing because its patterns no longer match anything."""
    texts = _alert_texts()
    quoted_goals = sum(len(_quoted(QUOTED_GOAL, texts[t.alert])) for t in LINKED.values())
    quoted_bad_levels = sum(len(_quoted(QUOTED_BAD, texts[t.alert])) for t in LINKED.values())
    assert quoted_goals >= 6 and quoted_bad_levels >= 10, (quoted_goals, quoted_bad_levels)


def test_every_alert_is_linked_to_a_target_or_listed_without_one() -> None:
    linked = {t.alert for t in LINKED.values()}
    assert len(linked) == len(LINKED), "two targets name the same alert"
    assert not linked & ALERTS_WITHOUT_A_BOARD_TARGET
    assert linked | ALERTS_WITHOUT_A_BOARD_TARGET == set(_alert_rules())
