"""The README documents every setting with its default, and shows the two commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(name):
    field = Settings.model_fields[name]
    row = next((line for line in README.splitlines() if line.startswith(f"| `CXPULSE_{name.upper()}` |")), None)
    assert row is not None, f"CXPULSE_{name.upper()} is missing from the README settings table"
    if field.default is not None and name != "data_dir":
        assert f"`{field.default}`" in row


def test_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README
