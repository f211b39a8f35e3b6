"""The README is the user's front door: every setting and every log event is documented there."""

import re
from pathlib import Path

from controller.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    for row in Settings().describe():
        assert f"`{row['env']}`" in README, row["env"]


def test_every_log_event_is_documented() -> None:
    events: set[str] = set()
    pattern = re.compile(r"\b_?log\.(?:debug|info|warning|error)\(\s*\"([a-z_]+)\"", re.S)
    for path in (ROOT / "controller").rglob("*.py"):
        if "simulator" in path.parts:
            continue  # the simulator's own logs are not the daemon's vocabulary
        events.update(pattern.findall(path.read_text()))
    # Node changes are logged under the planner's event names.
    planner = (ROOT / "controller" / "planner.py").read_text()
    events.update(re.findall(r'NodeState\.\w+,\s*"([a-z_]+)"', planner))
    events -= {"instance_observed", "sweep_completed"}  # debug level only
    missing = sorted(e for e in events if f"`{e}`" not in README)
    assert not missing, missing
