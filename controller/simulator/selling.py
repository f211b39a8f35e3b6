"""Selling an instance: whether RunInstances may have what it asks, and CVM's refusal if not.

Price against the bid, spot or not, pay-as-you-go stock, the pool's quota, the account's spot
vCPU quota per zone and the pool's stock are checked in the order CVM reports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.simulator.instance import LaunchSpec, instance_names
from controller.simulator.market import Pool
from controller.tencentapi.errors import ApiError

if TYPE_CHECKING:
    from controller.simulator.state import World


def launch(world: World, spec: LaunchSpec, now: float, request_id: str) -> tuple[str, ...]:
    """RunInstances: checks price, quota and stock, then creates PENDING instances."""
    if spec.client_token is not None and spec.client_token in world.client_tokens:
        return world.client_tokens[spec.client_token]
    pool = world.pool_for(spec.region, spec.zone, spec.instance_type)
    world.check_image(spec.image_id)
    spot = spec.charge_type == "SPOTPAID"
    if spot and not pool.spot:
        raise ApiError(
            "UnsupportedOperation.NoInstanceTypeSupportSpot",
            f"The instance type {spec.instance_type} is not sold as spot in {spec.zone}.",
        )
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
        return _create(world, spec, pool, min(spec.count, pool.on_demand_stock), now, request_id)
    quota_left = max(0, pool.quota - (pool.held - pool.on_demand_held))
    if quota_left < need:
        raise ApiError(
            "LimitExceeded.SpotQuota",
            f"The quota of {spec.instance_type} in {spec.zone} is {pool.quota}; "
            f"{pool.held} are in use and {need} were requested.",
        )
    if spot:
        _check_spot_quota(world, pool, spec.zone, need)
    if pool.stock < need:
        raise _no_stock(world, pool, spec, need)
    if spec.dry_run:
        raise ApiError("DryRunOperation", "The request would have succeeded (DryRun).")
    return _create(world, spec, pool, min(spec.count, quota_left, pool.stock), now, request_id)


def _create(
    world: World, spec: LaunchSpec, pool: Pool, count: int, now: float, request_id: str
) -> tuple[str, ...]:
    """``count`` PENDING instances; their ids are what a repeat of the ClientToken returns."""
    ids = tuple(
        world.create_instance(spec, pool, name, now, request_id)
        for name in instance_names(spec.name, count)
    )
    if spec.client_token is not None:
        world.client_tokens[spec.client_token] = ids
    return ids


def spot_vcpus_used(world: World, zone: str) -> int:
    """vCPUs of the account's spot instances alive in ``zone`` (its spot quota's use)."""
    return world.spot_vcpus.get(zone, 0)


def _check_spot_quota(world: World, pool: Pool, zone: str, need: int) -> None:
    used = spot_vcpus_used(world, zone)
    total = world.config.spot_vcpu_quota
    if used + need * pool.cpu > total:
        raise ApiError(
            "LimitExceeded.UserSpotQuota",
            f"The account's spot quota in {zone} is {total} vCPUs; {used} are in use and "
            f"{need} x {pool.cpu} were requested.",
        )


def _no_stock(world: World, pool: Pool, spec: LaunchSpec, need: int) -> ApiError:
    """The refusal for a spot pool short of stock, by how short (pay-as-you-go has its own).

    Zone empty: ResourcesSoldOut.AvailabilityZoneSoldOut (the code the shared reference lists
    for spot). Type empty in the zone: ResourceInsufficient.ZoneSoldOutForSpecifiedInstance.
    Some left but fewer than asked: MinCount's InsufficientOfferingMinimum, else
    InvalidParameterValue.InsufficientOffering ("竞价数量不足").
    """
    if all(p.stock == 0 for p in world.pools.values() if p.zone == pool.zone):
        return ApiError(
            "ResourcesSoldOut.AvailabilityZoneSoldOut", f"The zone `{pool.zone}` is sold out."
        )
    if pool.stock == 0:
        return ApiError(
            "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance",
            f"The instance type {spec.instance_type} is sold out in {spec.zone}.",
        )
    if spec.min_count is not None:
        return ApiError(
            "ResourceInsufficient.InsufficientOfferingMinimum",
            f"Only {pool.stock} {spec.instance_type} can be created in {spec.zone}, "
            f"fewer than MinCount {need}.",
        )
    return ApiError(
        "InvalidParameterValue.InsufficientOffering",
        f"The stock of {spec.instance_type} in {spec.zone} is insufficient "
        f"({pool.stock} left, {need} requested).",
    )
