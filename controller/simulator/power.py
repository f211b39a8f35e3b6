"""StartInstances, StopInstances, RebootInstances: the power states of an instance.

``RUNNING -> STOPPING -> STOPPED -> STARTING -> RUNNING`` and ``RUNNING -> REBOOTING ->
RUNNING``, each step taking ``power_delay_s``. A stopped spot instance keeps its place in the
pool (its stock and quota) and its bill (``StopChargingMode`` KEEP_CHARGING: CVM refuses
STOP_CHARGING for spot); it is never reclaimed while stopped, and may be again once running.
Calls are all or nothing, as TerminateInstances: one id in a refused state refuses the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from controller.simulator.instance import Instance, State
from controller.tencentapi.errors import ApiError

if TYPE_CHECKING:
    from controller.simulator.state import World

STOPPED_MODES = ("KEEP_CHARGING", "STOP_CHARGING")
STOP_TYPES = ("SOFT", "HARD", "SOFT_FIRST")

# The code CVM answers for an instance in each state an operation does not accept.
REFUSED_STATE_CODES: dict[State, str] = {
    State.PENDING: "UnsupportedOperation.InstanceStatePending",
    State.LAUNCH_FAILED: "UnsupportedOperation.InstanceStateLaunchFailed",
    State.RUNNING: "UnsupportedOperation.InstanceStateRunning",
    State.STOPPING: "UnsupportedOperation.InstanceStateStopping",
    State.STOPPED: "UnsupportedOperation.InstanceStateStopped",
    State.STARTING: "UnsupportedOperation.InstanceStateStarting",
    State.REBOOTING: "UnsupportedOperation.InstanceStateRebooting",
    State.TERMINATING: "UnsupportedOperation.InstanceStateTerminating",
}
# The states each operation accepts.
ACCEPTS: dict[str, frozenset[State]] = {
    "StopInstances": frozenset({State.RUNNING}),
    "StartInstances": frozenset({State.STOPPED}),
    "RebootInstances": frozenset({State.RUNNING}),
    "TerminateInstances": frozenset({State.RUNNING, State.STOPPED, State.LAUNCH_FAILED}),
}
# The transient state each operation enters, and the state it settles in after power_delay_s.
_STEPS: dict[str, tuple[State, State]] = {
    "StopInstances": (State.STOPPING, State.STOPPED),
    "StartInstances": (State.STARTING, State.RUNNING),
    "RebootInstances": (State.REBOOTING, State.RUNNING),
}


def check_accepts(operation: str, instances: Iterable[Instance]) -> None:
    """Refuse the whole call if any instance is in a state ``operation`` does not accept."""
    accepted = ACCEPTS[operation]
    refused: dict[State, list[str]] = {}
    for instance in instances:
        if instance.state not in accepted:
            refused.setdefault(instance.state, []).append(instance.instance_id)
    for state, ids in refused.items():
        raise ApiError(
            REFUSED_STATE_CODES[state],
            f"The instances `{', '.join(ids)}` are {state}; {operation} is not supported in "
            "this state.",
        )


def power(
    world: World,
    operation: str,
    region: str,
    ids: list[str],
    now: float,
    request_id: str,
    *,
    stopped_mode: str = "KEEP_CHARGING",
) -> None:
    """Carry out StopInstances, StartInstances or RebootInstances on ``ids`` (all or nothing)."""
    instances = world.alive_in(region, ids)
    check_accepts(operation, instances)
    if operation == "StopInstances" and stopped_mode == "STOP_CHARGING":
        spot = [i.instance_id for i in instances if i.charge_type == "SPOTPAID"]
        if spot:
            raise ApiError(
                "UnsupportedOperation.StoppedModeStopCharging",
                f"The spot instances `{', '.join(spot)}` do not support `StoppedMode` "
                "STOP_CHARGING.",
            )
    transient, _ = _STEPS[operation]
    for instance in instances:
        instance.version += 1
        instance.state = transient
        instance.begin(operation, request_id)
        if operation == "StopInstances":
            instance.stopped_mode = stopped_mode
        world.schedule_power_step(instance, now + world.config.power_delay_s, operation)


def settle(world: World, instance: Instance, operation: str, now: float) -> None:
    """The timer of a power operation fired: the instance reaches its settled state."""
    _, settled = _STEPS[operation]
    instance.version += 1
    instance.state = settled
    instance.latest_operation_state = "SUCCESS"
    if settled == State.RUNNING:
        instance.stopped_mode = "NOT_APPLICABLE"
        world.schedule_reclaim(instance, now)
