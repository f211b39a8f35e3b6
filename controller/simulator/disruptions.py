"""What an operator does to the market: change a pool, reclaim spot instances, release any.

The admin API and the scenario's timed events both come here, through :meth:`World.apply`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from controller.errors import ValidationFailed
from controller.simulator import commands
from controller.simulator.instance import EndReason, Instance, State
from controller.simulator.market import DEFAULT_QUOTA, DEFAULT_STOCK, SPOT_DISCOUNT, Pool, spec_of

if TYPE_CHECKING:
    from controller.simulator.state import World


def apply(world: World, command: commands.Command, now: float) -> dict[str, object]:
    """Carry out an operator command; the result is what the admin endpoint returns."""
    if isinstance(command, commands.MarketUpdate):
        return update_market(world, command, now)
    if isinstance(command, commands.ReclaimOrder):
        return {"reclaimed": reclaim(world, command, now)}
    if isinstance(command, commands.ReleaseOrder):
        return {"released": release(world, command, now)}
    world.faults.update(command)
    return {"faults": world.faults.view()}


def update_market(world: World, update: commands.MarketUpdate, now: float) -> dict[str, object]:
    pool = world.pools.get((update.zone, update.instance_type))
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
        world.pools[(update.zone, update.instance_type)] = pool
    for name in ("price", "quota", "cpu", "memory", "on_demand_price"):
        value = getattr(update, name)
        if value is not None:
            setattr(pool, name, value)
    if update.on_demand_stock is not None:
        pool.on_demand_capacity = update.on_demand_stock  # never reclaims: pay-as-you-go
    reclaimed: list[str] = []
    if update.stock is not None:
        pool.capacity = update.stock
        reclaimed = _cut(world, pool, now)
    return {"pool": pool.view(), "reclaimed": reclaimed}


def _cut(world: World, pool: Pool, now: float) -> list[str]:
    """Reclaim running instances of ``pool`` beyond its capacity: a stock cut."""
    members = [
        i
        for i in world.alive.values()
        if i.zone == pool.zone and i.instance_type == pool.instance_type
    ]
    staying = [i for i in members if i.state != State.TERMINATING and i.charge_type == "SPOTPAID"]
    excess = len(staying) - pool.capacity
    running = [i for i in staying if i.state == State.RUNNING and i.charge_type == "SPOTPAID"]
    if excess <= 0 or not running:
        return []
    victims = world.rng.sample(running, min(excess, len(running)))
    return _reclaim_now(world, victims, now)


def reclaim(world: World, order: commands.ReclaimOrder, now: float) -> list[str]:
    if order.instance_ids is not None:
        victims = []
        for instance_id in dict.fromkeys(order.instance_ids):
            instance = world.alive.get(instance_id)
            if instance is None:
                raise ValidationFailed("instance_ids", f"{instance_id} is not alive")
            if instance.state != State.RUNNING:
                raise ValidationFailed(
                    "instance_ids", f"{instance_id} is {instance.state}, not RUNNING"
                )
            victims.append(instance)
        return _reclaim_now(world, victims, now)
    candidates = [
        i
        for i in world.alive.values()
        if i.state == State.RUNNING
        and i.charge_type == "SPOTPAID"
        and order.zone in (None, i.zone)
        and order.instance_type in (None, i.instance_type)
    ]
    if order.count is not None:
        wanted = min(order.count, len(candidates))
    else:
        wanted = math.floor((order.fraction or 0.0) * len(candidates) + 0.5)
    return _reclaim_now(world, world.rng.sample(candidates, wanted), now)


def _reclaim_now(world: World, victims: list[Instance], now: float) -> list[str]:
    victims = sorted(victims, key=lambda i: i.seq)
    for instance in victims:
        world.begin_termination(instance, now, EndReason.RECLAIMED)
    return [i.instance_id for i in victims]


def release(world: World, order: commands.ReleaseOrder, now: float) -> list[str]:
    instances = []
    for instance_id in dict.fromkeys(order.instance_ids):
        instance = world.alive.get(instance_id)
        if instance is None:
            raise ValidationFailed("instance_ids", f"{instance_id} is not alive")
        instances.append(instance)
    for instance in instances:
        world.end_instance(instance, now, EndReason.RELEASED)
    return [i.instance_id for i in instances]
