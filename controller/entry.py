"""The process entry point: a SIGTERM that comes while the process is still starting.

Importing the CLI and opening the store take a second or more, and an orchestrator may stop a
daemon at any moment (a rollout, a failover). Until the daemon's own handler takes over (then
in-flight calls finish and results are recorded), a SIGTERM ends the process at once: exit 0
for ``run`` (nothing was started, nothing is lost), 128 + 15 for any other command.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> None:
    signal.signal(signal.SIGTERM, _stopped_while_starting)
    from controller.cli import main as cli_main

    cli_main()


def _stopped_while_starting(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0 if sys.argv[1:2] == ["run"] else 128 + signum)
