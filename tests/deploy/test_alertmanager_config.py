"""amtool checks of deploy/alertmanager/alertmanager.yml and of its rendering."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.local import monitoring as ops

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def _route(amtool: str, config: Path, *labels: str) -> str:
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_check_config(binaries: dict[str, str]) -> None:
    result = subprocess.run([binaries["amtool"], "check-config", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical"], "oncall"),
        (["severity=critical", "alertname=ComplaintSpike", "area=contacts"], "oncall"),
        (["severity=warning"], "ticket"),
        (["severity=warning", "alertname=ConsumerLagGrowing", "topic=cx.contacts"], "ticket"),
        (["severity=info"], "default"),
        (["alertname=Other"], "default"),
    ],
)
def test_routes(binaries: dict[str, str], labels: list[str], receiver: str) -> None:
    assert _route(binaries["amtool"], CONFIG, *labels) == receiver


def test_inhibition_and_timers() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert "area" in inhibit["equal"]
    routes = {r["receiver"]: r for r in config["route"]["routes"]}
    assert routes["oncall"]["repeat_interval"] == "1h"
    assert routes["ticket"]["repeat_interval"] == "24h"


def test_rendered_config_overrides_webhooks(binaries: dict[str, str], tmp_path: Path) -> None:
    rendered = tmp_path / "am.yml"
    rendered.write_text(
        ops.render_alertmanager_config(
            oncall_url="http://127.0.0.1:18001/page",
            ticket_url="http://127.0.0.1:18002/ticket",
            group_wait="1s",
            group_interval="1s",
        )
    )
    result = subprocess.run([binaries["amtool"], "check-config", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(rendered.read_text())
    urls = {r["name"]: [w["url"] for w in r.get("webhook_configs", [])] for r in config["receivers"]}
    assert urls["oncall"] == ["http://127.0.0.1:18001/page"]
    assert urls["ticket"] == ["http://127.0.0.1:18002/ticket"]
    assert config["route"]["group_wait"] == "1s"
    assert all(r["group_wait"] == "1s" for r in config["route"]["routes"])
    assert _route(binaries["amtool"], rendered, "severity=critical") == "oncall"
