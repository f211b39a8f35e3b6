"""The price book: hourly prices of the offerings of environments with a capacity policy.

Owned here, read by the pass into the snapshot. A spend cap needs the price of the next
instance before it is launched, and a node records the price it was bought at; the prices
come from DescribeZoneInstanceConfigInfos (one call per zone and charge type, refreshed
every ``ttl_s``: every cache has a TTL). Environments without a policy cause no call at
all, so they run exactly as before. A failed refresh keeps the last prices: the planner
prices an unknown spot offering at its bid (its upper bound) and launches no unpriced
pay-as-you-go instance under a cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from controller.cloud.client import CvmClient
from controller.core.events import Event
from controller.core.instances import CHARGE_TYPES, Offering
from controller.core.spec import EnvironmentSpec
from controller.errors import CloudError
from controller.logs import get_logger
from controller.reconcile.clock import Clock

log = get_logger()

PRICE_TTL_S = 60.0


class PriceBook:
    def __init__(self, client: CvmClient, clock: Clock, ttl_s: float = PRICE_TTL_S) -> None:
        self.client, self.clock, self.ttl_s = client, clock, ttl_s
        self.prices: dict[Offering, Decimal] = {}
        self._fetched_at: dict[tuple[str, str], float] = {}  # (zone, charge type) -> monotonic

    @property
    def current(self) -> Mapping[Offering, Decimal]:
        return self.prices

    async def refresh(self, specs: Iterable[EnvironmentSpec]) -> None:
        """Fetch the zones of policy environments whose prices are older than the TTL."""
        zones = sorted(
            {o.zone for spec in specs if not spec.capacity.is_default for o in spec.offerings}
        )
        now = self.clock.monotonic()
        for zone in zones:
            for charge_type in CHARGE_TYPES:
                fetched = self._fetched_at.get((zone, charge_type))
                if fetched is not None and now - fetched < self.ttl_s:
                    continue
                try:
                    pools = await self.client.describe_zone_instance_config_infos(
                        zone=zone, charge_type=charge_type
                    )
                except CloudError as exc:
                    log.warning(
                        Event.PRICE_REFRESH_FAILED,
                        zone=zone,
                        charge_type=charge_type,
                        code=exc.code,
                    )
                    continue
                self._fetched_at[(zone, charge_type)] = now
                for pool in pools:
                    if pool.unit_price is not None and pool.unit_price > 0:
                        key = Offering(pool.zone, pool.instance_type, charge_type)
                        self.prices[key] = Decimal(str(pool.unit_price))
