"""How cxpulse runs: deployment files (Kafka, Prometheus, Alertmanager, compose, Kubernetes) and,
in :mod:`deploy.local` and :mod:`deploy.simulator`, the tooling for local runs, demos and tests.

Nothing here is imported by the worker (:mod:`streams`): the worker image needs only
``streams``, ``detectors`` and ``schemas``. The configuration files beside this module are
package data, so a plain ``pip install cxpulse`` can run ``cxpulse demo``.
"""

from __future__ import annotations

from pathlib import Path

#: This folder: the committed Kafka, Prometheus and Alertmanager files live under it.
DEPLOY_DIR = Path(__file__).resolve().parent
