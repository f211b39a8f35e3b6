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
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from controller.errors import ValidationFailed
from controller.simulator import commands
from controller.simulator.config import SimulatorConfig
from controller.simulator.errors import ApiError
from controller.simulator.faults import Faults
from controller.simulator.market import (
    DEFAULT_QUOTA,
    DEFAULT_STOCK,
    SPOT_DISCOUNT,
    Pool,
    region_of,
    spec_of,
)
from controller.simulator.stats import Stats

_ID_ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_INSTANCE_NAME = "未命名"  # Tencent's default name ("Unnamed")
LAUNCH_FAILED_MESSAGE = (
    "ResourceInsufficient.SpecifiedInstanceType: the spot instance could not be created "
    "because the stock of the specified instance type was exhausted during creation."
)


class State(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    LAUNCH_FAILED = "LAUNCH_FAILED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"  # gone: only the admin view shows it


class EndReason(StrEnum):
    TERMINATED = "terminated"
    RECLAIMED = "reclaimed"
    RELEASED = "released"


def format_time(seconds: float) -> str:
    """Tencent's ``YYYY-MM-DDThh:mm:ssZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True)
class LaunchSpec:
    """A RunInstances request once its parameters are known to be well formed."""

    region: str
    zone: str
    instance_type: str
    image_id: str
    count: int = 1
    min_count: int | None = None
    name: str | None = None
    charge_type: str = "SPOTPAID"
    max_price: float | None = None
    tags: tuple[tuple[str, str], ...] = ()
    client_token: str | None = None
    security_group_ids: tuple[str, ...] = ()
    vpc_id: str = ""
    subnet_id: str = ""
    key_ids: tuple[str, ...] = ()
    dry_run: bool = False


@dataclass
class Instance:
    """One instance, alive or gone; times are simulator clock seconds."""

    instance_id: str
    seq: int
    zone: str
    instance_type: str
    image_id: str
    name: str
    charge_type: str
    max_price: float | None
    price: float
    tags: dict[str, str]
    created_at: float
    client_token: str | None
    cpu: int
    memory: int
    private_ip: str
    uuid: str
    security_group_ids: tuple[str, ...]
    vpc_id: str
    subnet_id: str
    key_ids: tuple[str, ...]
    will_fail: bool
    state: State = State.PENDING
    latest_operation: str = "RunInstances"
    latest_operation_state: str = "OPERATING"
    latest_operation_request_id: str = ""
    latest_operation_error: str = ""
    launch_failed: bool = False
    running_at: float | None = None
    ending_reason: EndReason | None = None
    ended_at: float | None = None
    end_reason: EndReason | None = None
    # Bumped on every state change so that timers scheduled for an older state are ignored.
    version: int = 0

    @property
    def region(self) -> str:
        return region_of(self.zone)

    @property
    def gone(self) -> bool:
        return self.ended_at is not None

    def view(self) -> dict[str, object]:
        """The admin API's view: the Tencent names, Tags as a {key: value} dict."""
        return {
            "InstanceId": self.instance_id,
            "InstanceState": str(self.state),
            "Region": self.region,
            "Zone": self.zone,
            "InstanceType": self.instance_type,
            "ImageId": self.image_id,
            "InstanceName": self.name,
            "InstanceChargeType": self.charge_type,
            "MaxPrice": self.max_price,
            "Price": self.price,
            "Tags": dict(self.tags),
            "CreatedTime": format_time(self.created_at),
            "RunningTime": None if self.running_at is None else format_time(self.running_at),
            "ClientToken": self.client_token,
            "PrivateIpAddress": self.private_ip,
            "LatestOperation": self.latest_operation,
            "LatestOperationState": self.latest_operation_state,
            "LatestOperationErrorMsg": self.latest_operation_error,
            "LaunchFailed": self.launch_failed,
            "EndedTime": None if self.ended_at is None else format_time(self.ended_at),
            "EndReason": None if self.end_reason is None else str(self.end_reason),
        }


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

    def __init__(self, config: SimulatorConfig, *, seed: int | None, now: float) -> None:
        self.config = config.copy()
        self.rng = random.Random(seed)
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
                on_demand_capacity=pool.on_demand_stock,
            )
        self.images = set(self.config.images)
        self.faults = Faults(self.config.faults)
        self.stats = Stats()
        self.instances: dict[str, Instance] = {}  # every instance ever, in creation order
        self.alive: dict[str, Instance] = {}  # not gone yet, in creation order
        self.client_tokens: dict[str, tuple[str, ...]] = {}
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
            self._begin_termination(instance, timer.due, EndReason.RECLAIMED)
        elif timer.kind == "gone":
            self._end(instance, timer.due, instance.ending_reason or EndReason.TERMINATED)

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
        """A lowercase uuid4 drawn from the seeded generator (RequestIds, instance Uuids)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

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
        if spec.client_token is not None and spec.client_token in self.client_tokens:
            return self.client_tokens[spec.client_token]
        pool = self.pool_for(spec.region, spec.zone, spec.instance_type)
        self.check_image(spec.image_id)
        if (
            spec.charge_type == "SPOTPAID"
            and spec.max_price is not None
            and spec.max_price + 1e-9 < pool.price
        ):
            raise ApiError(
                "InvalidParameterValue.InsufficientPrice",
                f"The bid price {spec.max_price:g} is lower than the current spot price "
                f"{pool.price:g} of {spec.instance_type} in {spec.zone}.",
            )
        need = spec.min_count or spec.count
        if spec.charge_type != "SPOTPAID":  # pay-as-you-go: its own stock, no spot quota
            if pool.on_demand_stock < need:
                raise ApiError(
                    "ResourceInsufficient.SpecifiedInstanceType",
                    f"The pay-as-you-go stock of {spec.instance_type} in {spec.zone} is "
                    f"insufficient ({pool.on_demand_stock} left, {need} requested).",
                )
            if spec.dry_run:
                raise ApiError("DryRunOperation", "The request would have succeeded (DryRun).")
            count = min(spec.count, pool.on_demand_stock)
            ids = tuple(
                self._create(spec, pool, name, now, request_id)
                for name in instance_names(spec.name, count)
            )
            if spec.client_token is not None:
                self.client_tokens[spec.client_token] = ids
            return ids
        quota_left = max(0, pool.quota - (pool.held - pool.on_demand_held))
        if quota_left < need:
            code = (
                "LimitExceeded.SpotQuota"
                if spec.charge_type == "SPOTPAID"
                else ("LimitExceeded.InstanceQuota")
            )
            raise ApiError(
                code,
                f"The quota of {spec.instance_type} in {spec.zone} is {pool.quota}; "
                f"{pool.held} are in use and {need} were requested.",
            )
        if pool.stock < need:
            raise self._no_stock(pool, spec, need)
        if spec.dry_run:
            raise ApiError("DryRunOperation", "The request would have succeeded (DryRun).")
        count = min(spec.count, quota_left, pool.stock)
        ids = tuple(
            self._create(spec, pool, name, now, request_id)
            for name in instance_names(spec.name, count)
        )
        if spec.client_token is not None:
            self.client_tokens[spec.client_token] = ids
        return ids

    def _no_stock(self, pool: Pool, spec: LaunchSpec, need: int) -> ApiError:
        if all(p.stock == 0 for p in self.pools.values() if p.zone == pool.zone):
            return ApiError(
                "ResourceInsufficient.AvailabilityZoneSoldOut",
                f"The zone `{pool.zone}` is sold out.",
            )
        if spec.min_count is not None:
            return ApiError(
                "ResourceInsufficient.InsufficientOfferingMinimum",
                f"Only {pool.stock} {spec.instance_type} can be created in {spec.zone}, "
                f"fewer than MinCount {need}.",
            )
        return ApiError(
            "ResourceInsufficient.SpecifiedInstanceType",
            f"The stock of {spec.instance_type} in {spec.zone} is insufficient "
            f"({pool.stock} left, {need} requested).",
        )

    def _create(self, spec: LaunchSpec, pool: Pool, name: str, now: float, request_id: str) -> str:
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
            will_fail=_roll(self.rng, self.config.launch_failure_rate),
            latest_operation_request_id=request_id,
        )
        self.instances[instance.instance_id] = instance
        self.alive[instance.instance_id] = instance
        self.membership_version += 1
        pool.held += 1
        if spec.charge_type != "SPOTPAID":
            pool.on_demand_held += 1
        self.stats.launched_total += 1
        self._schedule(now + self.config.launch_delay_s, "boot", instance.instance_id)
        return instance.instance_id

    def terminate(self, region: str, ids: list[str], now: float, request_id: str) -> None:
        """TerminateInstances: all or nothing, refusing unknown, pending and terminating ids."""
        unique = list(dict.fromkeys(ids))
        missing = [i for i in unique if i not in self.alive or self.alive[i].region != region]
        if missing:
            raise ApiError(
                "InvalidInstanceId.NotFound",
                f"The instance ids `{', '.join(missing)}` do not exist.",
            )
        instances = [self.alive[i] for i in unique]
        for state, code in (
            (State.PENDING, "UnsupportedOperation.InstanceStatePending"),
            (State.TERMINATING, "UnsupportedOperation.InstanceStateTerminating"),
        ):
            stuck = [i.instance_id for i in instances if i.state == state]
            if stuck:
                raise ApiError(
                    code,
                    f"The instances `{', '.join(stuck)}` are {state}; the operation is "
                    "not supported in this state.",
                )
        for instance in instances:
            self._begin_termination(instance, now, EndReason.TERMINATED, request_id)

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
        rate = self.config.reclaim_rate_per_hour
        if instance.charge_type == "SPOTPAID" and rate > 0:
            # A fraction r reclaimed per hour is a hazard of -ln(1 - r) per hour.
            hazard = -math.log(max(1e-9, 1.0 - rate))
            lifetime_s = self.rng.expovariate(hazard) * 3600.0
            self._schedule(now + lifetime_s, "reclaim", instance.instance_id, instance.version)

    def _begin_termination(
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

    def _end(self, instance: Instance, now: float, reason: EndReason) -> None:
        instance.version += 1
        instance.state = State.TERMINATED
        instance.latest_operation_state = "SUCCESS"
        instance.ended_at = now
        instance.end_reason = reason
        del self.alive[instance.instance_id]
        self.membership_version += 1
        pool = self.pools[(instance.zone, instance.instance_type)]
        pool.held -= 1
        if instance.charge_type != "SPOTPAID":
            pool.on_demand_held -= 1
        self.stats.ended[str(reason)] += 1

    # ---- operator commands (admin API and scenario) ------------------------------------

    def apply(self, command: commands.Command, now: float) -> dict[str, object]:
        """Carry out an operator command; the result is what the admin endpoint returns."""
        if isinstance(command, commands.MarketUpdate):
            return self.update_market(command, now)
        if isinstance(command, commands.ReclaimOrder):
            return {"reclaimed": self.reclaim(command, now)}
        if isinstance(command, commands.ReleaseOrder):
            return {"released": self.release(command, now)}
        self.faults.update(command)
        return {"faults": self.faults.view()}

    def update_market(self, update: commands.MarketUpdate, now: float) -> dict[str, object]:
        pool = self.pools.get((update.zone, update.instance_type))
        if pool is None:
            if update.price is None:
                raise ValidationFailed("price", "is required to create a pool")
            cpu, memory = spec_of(update.instance_type)
            pool = Pool(
                zone=update.zone,
                instance_type=update.instance_type,
                price=update.price,
                capacity=DEFAULT_STOCK,
                quota=DEFAULT_QUOTA,
                cpu=cpu,
                memory=memory,
                on_demand_price=round(update.price / SPOT_DISCOUNT, 4),
            )
            self.pools[(update.zone, update.instance_type)] = pool
        for name in ("price", "quota", "cpu", "memory", "on_demand_price"):
            value = getattr(update, name)
            if value is not None:
                setattr(pool, name, value)
        if update.on_demand_stock is not None:
            pool.on_demand_capacity = update.on_demand_stock  # never reclaims: pay-as-you-go
        reclaimed: list[str] = []
        if update.stock is not None:
            pool.capacity = update.stock
            reclaimed = self._cut(pool, now)
        return {"pool": pool.view(), "reclaimed": reclaimed}

    def _cut(self, pool: Pool, now: float) -> list[str]:
        """Reclaim running instances of ``pool`` beyond its capacity: a stock cut."""
        members = [
            i
            for i in self.alive.values()
            if i.zone == pool.zone and i.instance_type == pool.instance_type
        ]
        staying = [
            i for i in members if i.state != State.TERMINATING and i.charge_type == "SPOTPAID"
        ]
        excess = len(staying) - pool.capacity
        running = [i for i in staying if i.state == State.RUNNING and i.charge_type == "SPOTPAID"]
        if excess <= 0 or not running:
            return []
        victims = self.rng.sample(running, min(excess, len(running)))
        return self._reclaim_now(victims, now)

    def reclaim(self, order: commands.ReclaimOrder, now: float) -> list[str]:
        if order.instance_ids is not None:
            victims = []
            for instance_id in dict.fromkeys(order.instance_ids):
                instance = self.alive.get(instance_id)
                if instance is None:
                    raise ValidationFailed("instance_ids", f"{instance_id} is not alive")
                if instance.state != State.RUNNING:
                    raise ValidationFailed(
                        "instance_ids", f"{instance_id} is {instance.state}, not RUNNING"
                    )
                victims.append(instance)
            return self._reclaim_now(victims, now)
        candidates = [
            i
            for i in self.alive.values()
            if i.state == State.RUNNING
            and i.charge_type == "SPOTPAID"
            and order.zone in (None, i.zone)
            and order.instance_type in (None, i.instance_type)
        ]
        if order.count is not None:
            wanted = min(order.count, len(candidates))
        else:
            wanted = math.floor((order.fraction or 0.0) * len(candidates) + 0.5)
        return self._reclaim_now(self.rng.sample(candidates, wanted), now)

    def _reclaim_now(self, victims: list[Instance], now: float) -> list[str]:
        victims = sorted(victims, key=lambda i: i.seq)
        for instance in victims:
            self._begin_termination(instance, now, EndReason.RECLAIMED)
        return [i.instance_id for i in victims]

    def release(self, order: commands.ReleaseOrder, now: float) -> list[str]:
        instances = []
        for instance_id in dict.fromkeys(order.instance_ids):
            instance = self.alive.get(instance_id)
            if instance is None:
                raise ValidationFailed("instance_ids", f"{instance_id} is not alive")
            instances.append(instance)
        for instance in instances:
            self._end(instance, now, EndReason.RELEASED)
        return [i.instance_id for i in instances]

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


def instance_names(name: str | None, count: int) -> list[str]:
    """Tencent's naming of a batch: ``{R:x}`` counts up from x, else 1..n is appended."""
    if name is None:
        return [DEFAULT_INSTANCE_NAME] * count
    start = name.find("{R:")
    end = name.find("}", start)
    if start >= 0 and end > start and name[start + 3 : end].isdigit():
        first = int(name[start + 3 : end])
        return [f"{name[:start]}{first + i}{name[end + 1 :]}" for i in range(count)]
    if count == 1:
        return [name]
    return [f"{name}{i + 1}" for i in range(count)]


def _roll(rng: random.Random, rate: float) -> bool:
    return rate > 0 and rng.random() < rate
