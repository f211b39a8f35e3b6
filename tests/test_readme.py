"""The README is the user's front door: every setting and every log event is documented there."""

import re
from pathlib import Path

from controller.core.events import Event
from controller.core.regions import REGIONS
from controller.secrets import Secret
from controller.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    for row in Settings().describe():
        assert f"`{row['env']}`" in README, row["env"]


def settings_table() -> str:
    """The README's settings table, as generated from ``Settings`` (defaults, units, docs)."""
    defaults = Settings()
    lines = ["| variable | default | unit | meaning |", "|---|---|---|---|"]
    for row in defaults.describe():
        name = next(
            f for f, v in Settings.__dataclass_fields__.items() if v.metadata["env"] == row["env"]
        )
        if isinstance(getattr(defaults, name), Secret):
            shown = "(unset)"
        else:
            shown = row["value"] or "(empty)"
        lines.append(f"| `{row['env']}` | `{shown}` | {row['unit'] or '-'} | {row['doc']} |")
    return "\n".join(lines) + "\n"


def test_settings_table_is_generated_from_settings() -> None:
    """Regenerate with ``python -m tests.test_readme`` and paste under "## Configuration"."""
    assert settings_table() in README, "README settings table is stale:\n" + settings_table()


def test_every_known_region_is_listed() -> None:
    section = README[README.index("`TENCENTCLOUD_REGION` must be one of") :]
    section = section[: section.index("\n\n")]
    listed = re.findall(r"`([a-z]+(?:-[a-z]+)+)`", section.split("knows")[1].split(". Any")[0])
    assert listed == [r.name for r in REGIONS]


def test_every_log_event_is_documented() -> None:
    missing = sorted(e.value for e in Event if f"`{e.value}`" not in README)
    assert not missing, missing


if __name__ == "__main__":
    print(settings_table(), end="")
