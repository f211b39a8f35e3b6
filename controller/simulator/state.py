"""The simulated account: pools, instances and their timed transitions, with no HTTP in sight.

Everything that changes with time is a timer in one heap (boot, reclaim, gone, scenario
event), fired in time order by :meth:`World.advance`, so a clock that jumps an hour ahead gives
the same world as one that ticked through it. Every random choice comes from one
``random.Random(seed)``: the same seed, clock readings and calls give the same ids and events.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import string
import uuid
from dataclasses import dataclass, field

from controller.errors import ValidationFailed
from controller.simulator import commands, disruptions, power, selling
from controller.simulator.config import SimulatorConfig
from controller.simulator.faults import Faults
from controller.simulator.instance import (
    EndReason,
    Instance,
    LaunchSpec,
    State,
    format_time,
)
from controller.simulator.market import (
    Pool,
    region_of,
)
from controller.simulator.stats import Stats
from controller.tencentapi.errors import ApiError

_ID_ALPHABET = string.ascii_lowercase + string.digits
LAUNCH_FAILED_MESSAGE = (
    "ResourceInsufficient.SpecifiedInstanceType: the spot instance could not be created "
    "because the stock of the specified instance type was exhausted during creation."
)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    kind: str = field(compare=False)
    key: str = field(compare=False)
    version: int = field(compare=False, default=0)


class World:
    """The state machine behind the API and the admin endpoints.

    Methods take ``now`` (simulator seconds) from the caller and raise :class:`ApiError` for
    what Tencent would refuse, or :class:`ValidationFailed` for a bad admin command.
    """

    def __init__(
        self, config: SimulatorConfig, *, seed: int | None, now: float, generation: int = 0
    ) -> None:
        self.config = config.copy()
        self.rng = random.Random(seed)
        # RequestIds come from their own generator, seeded by the seed, the reset generation and
        # the start time: a run is reproducible (same seed, same clock), yet two runs started at
        # different times, or two resets of one run, never hand out the same ids. Apart from the
        # world's generator, a call's id does not shift every later random choice.
        self.request_ids = random.Random(None if seed is None else f"{seed}/{generation}/{now!r}")
        self.started_at = now
        self.now = now
        self.pools: dict[tuple[str, str], Pool] = {}
        for pool in self.config.markets:
            self.pools[(pool.zone, pool.instance_type)] = Pool(
                zone=pool.zone,
                instance_type=pool.instance_type,
                price=pool.price,
                capacity=pool.stock,
                quota=pool.quota,
                cpu=pool.cpu,
                memory=pool.memory,
                on_demand_price=pool.on_demand_price,
                spot=pool.spot,
                on_demand_capacity=pool.on_demand_stock,
            )
        self.images = set(self.config.images)
        self.faults = Faults(self.config.faults)
        self.stats = Stats()
        self.instances: dict[str, Instance] = {}  # every instance ever, in creation order
        self.alive: dict[str, Instance] = {}  # not gone yet, in creation order
        self.client_tokens: dict[str, tuple[str, ...]] = {}
        self.spot_vcpus: dict[str, int] = {}  # zone -> vCPUs of alive spot instances
        # Bumped whenever an instance is created or gone: a paged DescribeInstances may reuse the
        # filtered list of its previous page while the set of alive instances is unchanged.
        self.membership_version = 0
        self.describe_cache: dict[object, tuple[int, list[Instance]]] = {}
        self.scenario_log: list[dict[str, object]] = []
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._instance_seq = itertools.count()
        for index, event in enumerate(self.config.scenario):
            self._schedule(now + event.at_s, "scenario", str(index))

    # ---- time -------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Fire every timer due at or before ``now``, each at its own time."""
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            self._fire(timer)
        self.now = max(self.now, now)

    def _schedule(self, due: float, kind: str, key: str, version: int = 0) -> None:
        heapq.heappush(self._timers, _Timer(due, next(self._seq), kind, key, version))

    def _fire(self, timer: _Timer) -> None:
        if timer.kind == "scenario":
            self._run_scenario_event(int(timer.key), timer.due)
            return
        instance = self.instances[timer.key]
        if instance.version != timer.version or instance.gone:
            return  # scheduled for a state the instance has left
        if timer.kind == "boot":
            self._boot(instance, timer.due)
        elif timer.kind == "reclaim":
            self.begin_termination(instance, timer.due, EndReason.RECLAIMED)
        elif timer.kind == "gone":
            self.end_instance(instance, timer.due, instance.ending_reason or EndReason.TERMINATED)
        elif timer.kind.startswith("power:"):
            power.settle(self, instance, timer.kind.removeprefix("power:"), timer.due)

    def schedule_power_step(self, instance: Instance, due: float, operation: str) -> None:
        """Settle ``operation`` on ``instance`` at ``due`` unless its state moves first."""
        self._schedule(due, f"power:{operation}", instance.instance_id, instance.version)

    def schedule_reclaim(self, instance: Instance, now: float) -> None:
        """Draw a running spot instance's lifetime (``reclaim_rate_per_hour``) from ``now``."""
        rate = self.config.reclaim_rate_per_hour
        if instance.charge_type == "SPOTPAID" and rate > 0:
            # A fraction r reclaimed per hour is a hazard of -ln(1 - r) per hour.
            hazard = -math.log(max(1e-9, 1.0 - rate))
            lifetime_s = self.rng.expovariate(hazard) * 3600.0
            self._schedule(now + lifetime_s, "reclaim", instance.instance_id, instance.version)

    def _run_scenario_event(self, index: int, now: float) -> None:
        event = self.config.scenario[index]
        entry: dict[str, object] = {
            "at_s": event.at_s,
            "action": event.action,
            "fired_at": format_time(now),
        }
        try:
            entry["result"] = self.apply(commands.parse(event.action, event.payload), now)
        except ValidationFailed as exc:
            entry["error"] = str(exc)
        self.scenario_log.append(entry)

    # ---- randomness -------------------------------------------------------------------

    def new_uuid(self) -> str:
        """A lowercase uuid4 drawn from the world's seeded generator (instance Uuids)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_request_id(self) -> str:
        """A lowercase uuid4 RequestId (see ``request_ids`` in ``__init__``)."""
        return str(uuid.UUID(int=self.request_ids.getrandbits(128), version=4))

    def _new_instance_id(self) -> str:
        while True:
            candidate = "ins-" + "".join(self.rng.choice(_ID_ALPHABET) for _ in range(8))
            if candidate not in self.instances:
                return candidate

    # ---- lookups ----------------------------------------------------------------------

    def regions(self) -> set[str]:
        return {pool.region for pool in self.pools.values()} | {self.config.region}

    def pool_for(self, region: str, zone: str, instance_type: str) -> Pool:
        """The pool a launch in ``region`` would draw from, or Tencent's refusal."""
        if region_of(zone) != region:
            raise ApiError(
                "InvalidZone.MismatchRegion",
                f"The zone `{zone}` does not belong to the region `{region}`.",
            )
        if not any(pool.zone == zone for pool in self.pools.values()):
            raise ApiError(
                "InvalidParameterValue.ZoneNotSupported", f"The zone `{zone}` is not supported."
            )
        pool = self.pools.get((zone, instance_type))
        if pool is None:
            raise ApiError(
                "InvalidParameterValue.InstanceTypeNotFound",
                f"The instance type `{instance_type}` is not sold in the zone `{zone}`.",
            )
        return pool

    def check_image(self, image_id: str) -> None:
        if image_id not in self.images:
            raise ApiError("InvalidImageId.NotFound", f"The image `{image_id}` does not exist.")

    def visible(self, region: str, now: float) -> list[Instance]:
        """Alive instances of ``region`` that Describe* can see (older than describe_lag_s)."""
        horizon = now - self.faults.settings.describe_lag_s
        return [
            instance
            for instance in self.alive.values()
            if instance.region == region and instance.created_at <= horizon
        ]

    # ---- API operations ---------------------------------------------------------------

    def launch(self, spec: LaunchSpec, now: float, request_id: str) -> tuple[str, ...]:
        """RunInstances: checks price, quota and stock, then creates PENDING instances."""
        return selling.launch(self, spec, now, request_id)

    def spot_vcpus_used(self, zone: str) -> int:
        return selling.spot_vcpus_used(self, zone)

    def create_instance(
        self, spec: LaunchSpec, pool: Pool, name: str, now: float, request_id: str
    ) -> str:
        seq = next(self._instance_seq)
        instance = Instance(
            instance_id=self._new_instance_id(),
            seq=seq,
            zone=spec.zone,
            instance_type=spec.instance_type,
            image_id=spec.image_id,
            name=name,
            charge_type=spec.charge_type,
            max_price=spec.max_price,
            price=pool.price if spec.charge_type == "SPOTPAID" else pool.on_demand_price,
            tags=dict(spec.tags),
            created_at=now,
            client_token=spec.client_token,
            cpu=pool.cpu,
            memory=pool.memory,
            private_ip=f"10.{seq // 64516 % 256}.{seq // 254 % 254}.{seq % 254 + 1}",
            uuid=self.new_uuid(),
            security_group_ids=spec.security_group_ids,
            vpc_id=spec.vpc_id,
            subnet_id=spec.subnet_id,
            key_ids=spec.key_ids,
            echo=spec.echo,
            public_ip=_public_ip(seq) if spec.echo.public_ip else None,
            will_fail=_roll(self.rng, self.config.launch_failure_rate),
            latest_operation_request_id=request_id,
        )
        self.instances[instance.instance_id] = instance
        self.alive[instance.instance_id] = instance
        self.membership_version += 1
        pool.held += 1
        if instance.charge_type == "SPOTPAID":
            self.spot_vcpus[instance.zone] = self.spot_vcpus.get(instance.zone, 0) + instance.cpu
        else:
            pool.on_demand_held += 1
        self.stats.launched_total += 1
        self._schedule(now + self.config.launch_delay_s, "boot", instance.instance_id)
        return instance.instance_id

    def alive_in(self, region: str, ids: list[str]) -> list[Instance]:
        """The alive instances ``ids`` of ``region`` (repeats dropped), or InvalidInstanceId."""
        unique = list(dict.fromkeys(ids))
        missing = [i for i in unique if i not in self.alive or self.alive[i].region != region]
        if missing:
            raise ApiError(
                "InvalidInstanceId.NotFound",
                f"The instance ids `{', '.join(missing)}` do not exist.",
            )
        return [self.alive[i] for i in unique]

    def terminate(self, region: str, ids: list[str], now: float, request_id: str) -> None:
        """TerminateInstances: all or nothing, refusing unknown ids and busy states."""
        instances = self.alive_in(region, ids)
        power.check_accepts("TerminateInstances", instances)
        for instance in instances:
            self.begin_termination(instance, now, EndReason.TERMINATED, request_id)

    # ---- transitions ------------------------------------------------------------------

    def _boot(self, instance: Instance, now: float) -> None:
        instance.version += 1
        if instance.will_fail:
            instance.state = State.LAUNCH_FAILED
            instance.latest_operation_state = "FAILED"
            instance.latest_operation_error = LAUNCH_FAILED_MESSAGE
            instance.launch_failed = True
            self.stats.launch_failed_total += 1
            return
        instance.state = State.RUNNING
        instance.latest_operation_state = "SUCCESS"
        instance.running_at = now
        self.schedule_reclaim(instance, now)

    def begin_termination(
        self, instance: Instance, now: float, reason: EndReason, request_id: str = ""
    ) -> None:
        instance.version += 1
        instance.state = State.TERMINATING
        instance.ending_reason = reason
        instance.latest_operation = "TerminateInstances"
        instance.latest_operation_state = "OPERATING"
        instance.latest_operation_request_id = request_id
        instance.latest_operation_error = ""
        self._schedule(
            now + self.config.terminate_delay_s, "gone", instance.instance_id, instance.version
        )

    def end_instance(self, instance: Instance, now: float, reason: EndReason) -> None:
        instance.version += 1
        instance.state = State.TERMINATED
        instance.latest_operation_state = "SUCCESS"
        instance.ended_at = now
        instance.end_reason = reason
        del self.alive[instance.instance_id]
        self.membership_version += 1
        pool = self.pools[(instance.zone, instance.instance_type)]
        pool.held -= 1
        if instance.charge_type == "SPOTPAID":
            self.spot_vcpus[instance.zone] -= instance.cpu
        else:
            pool.on_demand_held -= 1
        self.stats.ended[str(reason)] += 1

    # ---- operator commands (admin API and scenario) ------------------------------------

    def apply(self, command: commands.Command, now: float) -> dict[str, object]:
        """Carry out an operator command; the result is what the admin endpoint returns."""
        return disruptions.apply(self, command, now)

    def update_market(self, update: commands.MarketUpdate, now: float) -> dict[str, object]:
        return disruptions.update_market(self, update, now)

    def reclaim(self, order: commands.ReclaimOrder, now: float) -> list[str]:
        return disruptions.reclaim(self, order, now)

    def release(self, order: commands.ReleaseOrder, now: float) -> list[str]:
        return disruptions.release(self, order, now)

    # ---- views ------------------------------------------------------------------------

    def stats_view(self) -> dict[str, object]:
        by_state: dict[str, int] = {}
        for instance in self.alive.values():
            by_state[str(instance.state)] = by_state.get(str(instance.state), 0) + 1
        return {
            **self.stats.view(),
            "alive": len(self.alive),
            "alive_by_state": by_state,
            "client_tokens": len(self.client_tokens),
            "scenario": list(self.scenario_log),
            "now": format_time(self.now),
            "elapsed_s": self.now - self.started_at,
        }


def _public_ip(seq: int) -> str:
    """A public address from TEST-NET-3 (203.0.113.0/24 and on): never a real host's."""
    return f"203.0.{113 + seq // 254 % 100}.{seq % 254 + 1}"


def _roll(rng: random.Random, rate: float) -> bool:
    return rate > 0 and rng.random() < rate
