"""The five cxpulse boards, one module each, and their JSON: :func:`all_dashboards` builds them
as ``{file stem: dashboard}`` and :func:`to_json` encodes one (``grafana/generate.py`` writes them)."""

from __future__ import annotations

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from grafana.boards import contact_center, deliveries, digital, pipeline, scorecard
from grafana.panels import ANNOTATION_EXTRAS

#: ``{file stem: board builder}``; the order is the order of the generated files.
BOARDS = {
    "cx-scorecard": scorecard.build,
    "digital-experience": digital.build,
    "contact-center": contact_center.build,
    "deliveries": deliveries.build,
    "pipeline-health": pipeline.build,
}


def to_json(model: dm.Dashboard) -> dict:
    """The dashboard JSON Grafana expects (the SDK's encoding plus :data:`ANNOTATION_EXTRAS`)."""
    data = json.loads(json.dumps(model, cls=JSONEncoder))
    for annotation in data.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            annotation.update(ANNOTATION_EXTRAS)
    return data


def all_dashboards() -> dict[str, dm.Dashboard]:
    """``{file stem: built dashboard model}`` with unique panel ids per board."""
    out: dict[str, dm.Dashboard] = {}
    for stem, make in BOARDS.items():
        built = make().build()
        next_id = 1
        for panel in built.panels or []:
            panel.id_val = next_id
            next_id += 1
        out[stem] = built
    return out
