"""Where the engine can be measured from outside: called at a sweep, a pass, a plan, a launch.

The defaults do nothing. The benchmark subclasses :class:`EngineHooks` to take its timings,
so the engine is measured as it runs in production, without patching its methods.
"""

from __future__ import annotations

from controller.core.instances import LaunchRequest
from controller.core.plan import Observation, Plan, Snapshot


class EngineHooks:
    def before_sweep(self) -> None:
        """A sweep starts."""

    def after_sweep(self, observation: Observation) -> None:
        """A sweep completed (a failed sweep calls nothing)."""

    def before_pass(self) -> None:
        """A pass starts."""

    def after_pass(self, plan: Plan | None) -> None:
        """A pass ended; ``plan`` is None when it planned nothing."""

    def before_plan(self, snapshot: Snapshot) -> None:
        """The planner is about to run on ``snapshot``."""

    def after_plan(self, snapshot: Snapshot) -> None:
        """The planner returned."""

    def before_launch(self, request: LaunchRequest) -> None:
        """A RunInstances call is about to be sent."""

    def after_launch(self, request: LaunchRequest) -> None:
        """A RunInstances call answered (or failed)."""
