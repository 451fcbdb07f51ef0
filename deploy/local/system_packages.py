"""The one way cxpulse installs what it runs beside Python, from Debian's packages.

A JDK 17 and Maven fetch and run Apache Kafka; Prometheus and Alertmanager come with promtool
and amtool. ``make system-deps`` (``python -m deploy.local.system_packages``), the Kafka runner
and the Prometheus/Alertmanager runner all call :func:`ensure`, so the package names and the
install command are written once. Idempotent; needs root (or password-less sudo) only when
something is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable

from deploy.local.exceptions import SystemPackageError

#: Tool -> (candidate executables, Debian package providing them).
TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "java": (("java",), "openjdk-17-jre-headless"),
    "mvn": (("mvn",), "maven"),
    "prometheus": (("prometheus",), "prometheus"),
    "promtool": (("promtool",), "prometheus"),
    "alertmanager": (("prometheus-alertmanager", "alertmanager"), "prometheus-alertmanager"),
    "amtool": (("amtool",), "prometheus-alertmanager"),
}
KAFKA_TOOLS = ("java", "mvn")
MONITORING_TOOLS = ("prometheus", "promtool", "alertmanager", "amtool")


def find(tool: str) -> str | None:
    """Path of ``tool``'s executable, or None."""
    for name in TOOLS[tool][0]:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure(tools: Iterable[str] = tuple(TOOLS), *, install: bool = True) -> dict[str, str]:
    """Make sure every tool exists, installing missing ones from Debian; return tool -> path."""
    tools = tuple(tools)
    found = {tool: find(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if path is None]
    if missing and install:
        apt_install(sorted({TOOLS[tool][1] for tool in missing}))
        found = {tool: find(tool) for tool in tools}
        missing = [tool for tool, path in found.items() if path is None]
    if missing:
        packages = " ".join(sorted({TOOLS[tool][1] for tool in missing}))
        raise SystemPackageError(
            f"missing {', '.join(missing)}: install the Debian packages ({packages}) or put the binaries on PATH"
        )
    return {tool: path for tool, path in found.items() if path is not None}


def apt_install(packages: Iterable[str]) -> None:
    """``apt-get update`` then ``apt-get install`` (as root, or through ``sudo -n``)."""
    packages = list(packages)
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SystemPackageError(f"need root (or sudo) to apt-get install {' '.join(packages)}")
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"installing from Debian: {' '.join(packages)}", file=sys.stderr)
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        result = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemPackageError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-2000:]}")


def main() -> None:
    for tool, path in ensure().items():
        print(f"{tool}: {path}")


if __name__ == "__main__":
    main()
