"""Write the boards of :mod:`grafana.boards` as JSON files (``cxpulse grafana generate``).

python -m grafana.generate [OUT_DIR]      # default: grafana/dashboards/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana.boards import all_dashboards, to_json

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"


def render() -> dict[str, str]:
    """``{file name: JSON text}`` of every board, deterministic (sorted keys, trailing newline)."""
    return {
        f"{stem}.json": json.dumps(to_json(model), indent=2, sort_keys=True) + "\n"
        for stem, model in all_dashboards().items()
    }


def main(out_dir: Path | str = DASHBOARDS_DIR) -> list[Path]:
    """Write every board to ``out_dir/<name>.json``, remove stale ``*.json`` there; return paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in out.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in main(sys.argv[1] if len(sys.argv) > 1 else DASHBOARDS_DIR):
        print(p)
