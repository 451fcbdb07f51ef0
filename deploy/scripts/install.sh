#!/usr/bin/env bash
# Install Prometheus (with promtool) and Alertmanager (with amtool) from Debian's packages if they
# are missing. Same as streams.ops.ensure_installed().
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -c 'from streams import ops; [print(f"{k}: {v}") for k, v in ops.ensure_installed().items()]'
