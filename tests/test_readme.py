"""The README is the user's front door: every setting and every log event is documented there."""

from pathlib import Path

from controller.core.events import Event
from controller.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    for row in Settings().describe():
        assert f"`{row['env']}`" in README, row["env"]


def test_every_log_event_is_documented() -> None:
    missing = sorted(e.value for e in Event if f"`{e.value}`" not in README)
    assert not missing, missing
