"""Static checks of the Prometheus config and rules (promtool), and their consistency with the
metric catalogue, the unit tests and the runbooks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from deploy.local import monitoring as ops
from streams.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK_PREFIX = "https://github.com/cxpulse/cxpulse/blob/main/"


def _alert_rules() -> list[dict]:
    rules = []
    for group in yaml.safe_load((PROM / "rules" / "alerts.yml").read_text())["groups"]:
        rules += [r for r in group["rules"] if "alert" in r]
    return rules


def catalogue_series() -> set[str]:
    """Every series name the worker can export (counter _total, histogram _bucket, ...)."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        base = family.name
        if family.type == "counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif family.type == "histogram":
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        elif family.type == "summary":
            names |= {f"{base}_sum", f"{base}_count", f"{base}_created"}
        else:
            names.add(base)
    return names


def test_promtool_check_rules(binaries: dict[str, str]) -> None:
    result = subprocess.run(
        [binaries["promtool"], "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_committed_and_rendered(binaries: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [binaries["promtool"], "check", "config", str(PROM / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(
        ops.render_prometheus_config(
            ["127.0.0.1:7001", "127.0.0.1:7002"],
            alertmanagers=["127.0.0.1:7093"],
            scrape_interval="1s",
        )
    )
    result = subprocess.run([binaries["promtool"], "check", "config", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(rendered.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "cxpulse")
    assert job["static_configs"] == [{"targets": ["127.0.0.1:7001", "127.0.0.1:7002"]}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:7093"]
    assert config["global"]["scrape_interval"] == "1s"
    assert all(Path(p).is_absolute() and Path(p).exists() for p in config["rule_files"])


def test_promtool_unit_tests_pass(binaries: dict[str, str]) -> None:
    result = subprocess.run(
        [binaries["promtool"], "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        cwd=PROM,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_conventions_runbook_and_unit_tests() -> None:
    cases: dict[str, list[list]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    alerts = _alert_rules()
    assert len(alerts) >= 12
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert "for" in rule, name
        ann = rule["annotations"]
        assert ann["summary"] and "$value" in ann["description"], name
        assert ann["runbook_url"].startswith(RUNBOOK_PREFIX), name
        runbook = ROOT / ann["runbook_url"].removeprefix(RUNBOOK_PREFIX)
        assert runbook.is_file(), f"{name}: missing {runbook}"
        assert name in runbook.read_text(), f"{runbook} does not mention {name}"
        assert any(exp for exp in cases.get(name, [])), f"{name}: no unit test where it fires"
        assert any(not exp for exp in cases.get(name, [])), f"{name}: no unit test where it is quiet"


def test_rules_only_use_catalogued_metrics() -> None:
    known = catalogue_series() | {"up", "absent"}
    recorded = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded.add(rule["record"])
                for name in re.findall(r"\b(cxpulse_[a-z_]+)", rule["expr"]):
                    assert name in known, f"{path.name}: {name} is not in streams/metrics.py"
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in re.findall(r"\b(cxpulse:[a-z_]+:[a-z0-9_]+)", rule["expr"]):
                    assert name in recorded, f"{path.name}: {name} is never recorded"
