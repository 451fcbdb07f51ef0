"""The committed board JSON is what the code generates, and every board is well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from grafana import generate
from grafana.panels import DATASOURCE_UID
from grafana.queries import all_panel_queries, substitute
from grafana.targets import CSAT, NPS, ON_TIME

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "rules"
BOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
VARIABLES = {"carrier", "region", "channel", "reason", "page"}


def _panels(panels):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _boards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in BOARD_FILES}


def test_committed_json_is_generated(tmp_path: Path) -> None:
    written = generate.main(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in BOARD_FILES), (
        "run: python -m grafana.generate"
    )
    for path in written:
        assert path.read_text() == (DASHBOARDS / path.name).read_text(), (
            f"{path.name} is stale: run python -m grafana.generate"
        )
    # idempotent
    assert [p.read_text() for p in generate.main(tmp_path)] == [p.read_text() for p in written]


def test_the_five_boards_exist() -> None:
    titles = {b["title"] for b in _boards().values()}
    assert titles == {
        "cxpulse / CX scorecard",
        "cxpulse / Digital experience",
        "cxpulse / Contact center",
        "cxpulse / Deliveries",
        "cxpulse / Pipeline health",
    }


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.stem)
def test_board_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("cxpulse-") and len(board["uid"]) <= 40
    assert board["schemaVersion"] >= 39  # Grafana 11+
    ids = [p["id"] for p in _panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = []
    for panel in _panels(board["panels"]):
        assert panel.get("title"), panel
        if panel["type"] == "row":
            continue
        titles.append(panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no target"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == DATASOURCE_UID
        gp = panel["gridPos"]
        assert gp["w"] > 0 and gp["h"] > 0 and gp["x"] + gp["w"] <= 24
    assert len(titles) == len(set(titles)), "panel titles must be unique within a board"
    for var in board.get("templating", {}).get("list", []):
        assert var["name"] in VARIABLES
        assert (
            var["query"]["query"]
            == f"label_values({var['query']['query'].split('(')[1].split(',')[0]}, {var['name']})"
        )
        assert var["includeAll"] and var["allValue"] == ".*" and var["multi"]
        assert var["datasource"]["uid"] == DATASOURCE_UID
    used = set(
        re.findall(
            r"\$(\w+)",
            json.dumps([t["expr"] for p in _panels(board["panels"]) for t in p.get("targets", [])]),
        )
    )
    defined = {v["name"] for v in board.get("templating", {}).get("list", [])}
    assert used - {"__rate_interval", "__interval", "__range"} <= defined, "undefined variable"


def test_all_template_variables_are_offered() -> None:
    offered = {
        v["name"] for b in _boards().values() for v in b.get("templating", {}).get("list", [])
    }
    assert offered == VARIABLES


def test_scorecard_thresholds_are_the_targets() -> None:
    board = _boards()["cx-scorecard"]
    steps = {
        p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        for p in _panels(board["panels"])
        if p["type"] == "stat"
    }
    assert steps["CSAT (1-5)"] == [None, CSAT.bad, CSAT.goal]
    assert steps["NPS"] == [None, NPS.bad, NPS.goal]
    assert steps["On-time delivery"] == [None, ON_TIME.bad, ON_TIME.goal]
    assert set(steps) >= {
        "CES (1-7, lower is better)",
        "First-contact resolution",
        "Complaint rate",
    }


def catalogue_series() -> set[str]:
    """Series names streams/metrics.py can export."""
    from prometheus_client import CollectorRegistry

    from streams.metrics import Metrics

    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_sum", "_count"],
        "summary": ["_sum", "_count"],
        "gauge": [""],
    }
    return {
        family.name + suffix
        for family in Metrics(CollectorRegistry()).registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def test_queries_use_recorded_series_and_catalogued_metrics() -> None:
    recorded = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded |= {r["record"] for r in group["rules"] if "record" in r}
    known = catalogue_series()
    for board, panel, expr in all_panel_queries(DASHBOARDS):
        for name in re.findall(r"\b(cxpulse:[a-z_]+:[a-z0-9_]+)", expr):
            assert name in recorded, f"{board} / {panel}: {name} is not a recording rule"
        for name in re.findall(r"\b(cxpulse_[a-z_]+)", expr):
            assert name in known, f"{board} / {panel}: {name} is not in streams/metrics.py"


def test_all_panel_queries_substitutes_variables() -> None:
    queries = all_panel_queries(DASHBOARDS)
    n_targets = sum(
        len(p.get("targets", [])) for b in _boards().values() for p in _panels(b["panels"])
    )
    assert len(queries) == n_targets >= 60
    assert {b for b, _, _ in queries} == {b["title"] for b in _boards().values()}
    for _, _, expr in queries:
        assert "$" not in expr, expr
    assert any('carrier=~".*"' in e for _, _, e in queries)
    assert any("[1m]" in e for _, _, e in queries)  # $__rate_interval
    concrete = all_panel_queries(DASHBOARDS, {"carrier": "dhl", "page": "/checkout"})
    assert any('carrier=~"dhl"' in e for _, _, e in concrete)
    assert substitute("[[page]] ${reason:regex}") == ".* .*"


def test_provisioning_files() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert (
        source["uid"] == DATASOURCE_UID and source["type"] == "prometheus" and source["isDefault"]
    )
    dash = yaml.safe_load((PROVISIONING / "dashboards" / "cxpulse.yaml").read_text())
    assert dash["apiVersion"] == 1
    (provider,) = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert f":{provider['options']['path']}" in mounts
    assert "provisioning" in mounts
