"""``cxpulse worker --processes N``: N worker processes of one consumer group on this host.

One worker process is one event loop on one core. On a machine with more cores than the broker
needs, N processes in the same group split the partitions between them (at most
``CXPULSE_PARTITIONS`` do work). Each child is an ordinary ``cxpulse worker`` with its own web
port (``CXPULSE_WEB_PORT`` + i, each serving its own ``/metrics``: scrape them all) and its own
static-membership id (``auto`` derives it from the port; an explicit ``CXPULSE_INSTANCE_ID``
gets ``-i`` appended), so a restarted child takes its partitions back like any restarted worker.

The parent only supervises: SIGINT/SIGTERM go to every child; when any child exits, the others
are stopped and the parent exits with that child's code, so an orchestrator restarts the set
and the failure shows instead of a fleet silently running one process short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from streams.settings import Settings

STOP_GRACE_S = 30.0


def child_environments(settings: Settings, processes: int) -> list[dict[str, str]]:
    """The environment of each child: the parent's, with its own web port and instance id."""
    envs = []
    for i in range(processes):
        env = dict(os.environ, CXPULSE_WEB_PORT=str(settings.web_port + i))
        if settings.instance_id not in ("", "auto"):
            env["CXPULSE_INSTANCE_ID"] = f"{settings.instance_id}-{i}"
        envs.append(env)
    return envs


def run_processes(settings: Settings, processes: int, loglevel: str) -> int:
    """Start ``processes`` workers and supervise them; returns the exit code of the first to exit."""
    command = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel]
    children = [subprocess.Popen(command, env=env) for env in child_environments(settings, processes)]
    stopping = {"signal": 0}

    def forward(signum: int, frame: Any) -> None:
        stopping["signal"] = signum
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = 0
    try:
        while True:
            exited = [child for child in children if child.poll() is not None]
            if exited:
                code = exited[0].returncode
                break
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0 if stopping["signal"] and code in (0, -signal.SIGTERM) else code
