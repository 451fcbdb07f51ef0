"""A plain ``pip install cxpulse`` carries what ``cxpulse demo`` needs: its code, the deploy
configuration files it renders and starts from, and every library it imports at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from deploy.local import kafka, monitoring

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (path,) = out.glob("cxpulse-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_carries_every_file_the_local_stack_reads(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    needed = [kafka.POM, kafka.KAFKA_DIR / "server.properties.template", kafka.KAFKA_DIR / "log4j2.yaml",
              monitoring.PROMETHEUS_CONFIG, *monitoring.PROMETHEUS_RULES, monitoring.ALERTMANAGER_CONFIG]  # fmt: skip
    for path in needed:
        assert path.relative_to(ROOT).as_posix() in names, path
    for module in ("streams/cli.py", "deploy/local/demo.py", "deploy/simulator/simulation.py", "schemas/json"):
        assert any(name.startswith(module) for name in names), module


def test_the_demo_needs_no_extra(wheel: zipfile.ZipFile) -> None:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(meta).decode()).get_all("Requires-Dist") or []
    runtime = {r.split(";")[0].split("=")[0].split(">")[0].strip().lower() for r in requires if "extra ==" not in r}
    assert {"pyyaml", "faust-streaming", "confluent-kafka", "river", "typer"} <= runtime
