"""Settings of the local tooling: the worker's settings plus what only local runs read.

One frozen object read once per process, like the worker's: ``cxpulse demo``, ``cxpulse kafka``
and the test harness read :func:`get_local_settings`; the worker never sees these fields.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from streams.settings import Settings


class LocalSettings(Settings):
    """Worker settings + ports of the local broker, Prometheus and Alertmanager (``CXPULSE_*``)."""

    kafka_controller_port: int = Field(
        9097, description="KRaft controller port of the local broker started by `cxpulse kafka start`."
    )
    prometheus_port: int = Field(9090, description="Port of the local Prometheus started by `cxpulse demo`.")
    alertmanager_port: int = Field(9093, description="Port of the local Alertmanager started by `cxpulse demo`.")


@lru_cache(maxsize=1)
def get_local_settings() -> LocalSettings:
    """The local-run settings in force, read once per process."""
    return LocalSettings()
