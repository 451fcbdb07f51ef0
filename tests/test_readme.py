"""The README documents every setting with its default, in the table of who reads it, and shows
the two commands. ``python -m tests.test_readme`` prints both settings tables (to paste)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.local.settings import LocalSettings
from streams.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
LOCAL_ONLY = [name for name in LocalSettings.model_fields if name not in Settings.model_fields]


def _default(name: str, cls: type[Settings]) -> str:
    field = cls.model_fields[name]
    if name == "data_dir":
        return "`var/` in the checkout"
    return "(unset)" if field.default is None else f"`{field.default}`"


def rows(cls: type[Settings], names: list[str]) -> list[str]:
    return [
        f"| `CXPULSE_{name.upper()}` | {_default(name, cls)} | {cls.model_fields[name].description} |"
        for name in names
    ]


def _table(title: str) -> str:
    """The README's table under the bold ``title`` line."""
    start = README.index(f"**{title}**")
    table = re.search(r"\n(\|.*\|\n)+", README[start:])
    assert table is not None, f"no table under {title}"
    return table.group(0)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_worker_setting_is_in_the_worker_table(name: str) -> None:
    assert f"| `CXPULSE_{name.upper()}` |" in _table("Worker settings")
    assert rows(Settings, [name])[0] in README, f"CXPULSE_{name.upper()}: default or text differs from the code"


@pytest.mark.parametrize("name", LOCAL_ONLY)
def test_every_local_setting_is_in_the_local_table(name: str) -> None:
    assert rows(LocalSettings, [name])[0] in _table("Local tooling settings")


def test_no_row_names_a_setting_that_does_not_exist() -> None:
    documented = set(re.findall(r"^\| `CXPULSE_([A-Z0-9_]+)` \|", README, flags=re.M))
    assert documented == {name.upper() for name in LocalSettings.model_fields}


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README


if __name__ == "__main__":
    header = "| variable | default | meaning |\n|---|---|---|"
    print("**Worker settings** (`streams/settings.py`)\n\n" + header)
    print("\n".join(rows(Settings, list(Settings.model_fields))))
    print("\n**Local tooling settings** (`deploy/local/settings.py`)\n\n" + header)
    print("\n".join(rows(LocalSettings, LOCAL_ONLY)))
