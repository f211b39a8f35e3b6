"""The offering cache: the engine's view of the market, per (zone, type, charge type).

Owned here, read by the pass into the snapshot (``prices`` and ``market``). Each entry is
what DescribeZoneInstanceConfigInfos last said: ``Status`` (SELL / SOLD_OUT), the stock class
(``StatusCategory``), the price (``UnitPriceDiscount``, else ``UnitPrice``), CPU and memory.

Only environments that need it cause calls (environments with neither a capacity policy nor a
placement that reads the market cause none, so they run exactly as before): one call per zone
and charge type, refreshed every ``refresh_s`` (SPOT_CONTROLLER_OFFERINGS_REFRESH_S), and
every ``PRICE_TTL_S`` for the zones of a capacity policy (a spend cap needs fresh prices, as
the price book before this cache did). A pool a launch just failed in, or one a placement
strategy launched into (its stock moved), is asked again at the next pass, alone (filtered by
zone and type). Unavailability is not kept here: a failed launch blocks its offering in the
engine's :class:`~controller.core.backoff.BackoffBook` for its backoff, which the planner
reads, and this cache only shows. A failed refresh keeps the last entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from controller.cloud.client import CvmClient
from controller.core.backoff import BackoffBook, Block
from controller.core.events import Event
from controller.core.instances import CHARGE_TYPES, SPOT, Offering, PoolOffering
from controller.core.placement import MarketOffer, stock_level
from controller.core.spec import EnvironmentSpec
from controller.errors import CloudError
from controller.logs import get_logger
from controller.reconcile.clock import Clock

log = get_logger()

PRICE_TTL_S = 60.0  # zones of a capacity policy (its spend cap reads prices)
SOLD_OUT_LOOK_S = 15.0  # zones with a pool in a capacity backoff: 4 calls a minute each
DEFAULT_REFRESH_S = 300.0


@dataclass(frozen=True)
class OfferingRow:
    """One entry as the CLI, /metrics and the console's Market page show it."""

    offering: Offering
    offer: MarketOffer
    refreshed_at: datetime
    unavailable_until: datetime | None  # a launch failed: the backoff's end
    backoff: Block | None = None  # that backoff (its kind and reason), while in force


def needs(specs: Iterable[EnvironmentSpec], refresh_s: float) -> dict[tuple[str, str], float]:
    """(zone, charge type) -> how often to ask, for the environments that need the market."""
    out: dict[tuple[str, str], float] = {}
    for spec in specs:
        capacity = not spec.capacity.is_default
        placing = spec.placement.needs_market
        if not (capacity or placing):
            continue
        ttl = min(PRICE_TTL_S, refresh_s) if capacity else refresh_s
        charge_types = CHARGE_TYPES if capacity else (SPOT,)
        for zone in spec.zones:
            for charge_type in charge_types:
                key = (zone, charge_type)
                out[key] = min(out.get(key, ttl), ttl)
    return out


def market_offer(pool: PoolOffering) -> MarketOffer:
    price = pool.unit_price
    return MarketOffer(
        status=pool.status,
        stock_class=pool.status_category,
        price=Decimal(str(price)) if price is not None and price > 0 else None,
        cpu=pool.cpu,
        memory=pool.memory,
    )


class OfferingCache:
    def __init__(
        self,
        client: CvmClient,
        clock: Clock,
        backoff: BackoffBook,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self.client, self.clock, self.backoff, self.refresh_s = client, clock, backoff, refresh_s
        self.prices: dict[Offering, Decimal] = {}
        self.market: dict[Offering, MarketOffer] = {}
        self.refreshed_at: dict[Offering, datetime] = {}
        self.calls = 0  # DescribeZoneInstanceConfigInfos sent (for the refresh's cost)
        self._fetched_at: dict[tuple[str, str], float] = {}  # (zone, charge type) -> monotonic
        self._seen_blocks: dict[tuple[str | None, Offering], Block] = {}
        self._launched: set[Offering] = set()  # launched into since the last refresh

    def launched(self, offerings: Iterable[Offering]) -> None:
        """Our own launches move a pool's stock: ask for those pools at the next refresh."""
        self._launched.update(offerings)

    @property
    def current(self) -> Mapping[Offering, Decimal]:
        return self.prices

    async def refresh(self, specs: Iterable[EnvironmentSpec]) -> None:
        """Ask for the zones whose entries are older than their interval, then the pools a
        launch failed in since the last refresh (the backoff book's new blocks)."""
        wanted = needs(specs, self.refresh_s)
        for key in self._sold_out_zones(wanted):
            wanted[key] = min(wanted[key], SOLD_OUT_LOOK_S)
        now = self.clock.monotonic()
        asked: set[tuple[str, str]] = set()
        for (zone, charge_type), ttl in sorted(wanted.items()):
            fetched = self._fetched_at.get((zone, charge_type))
            if fetched is not None and now - fetched < ttl:
                continue
            if await self._fetch(zone, charge_type, None):
                self._fetched_at[(zone, charge_type)] = now
            asked.add((zone, charge_type))
        moved = sorted(set(self._failed_since_last()) | self._launched, key=str)
        self._launched.clear()
        for offering in moved:
            key = (offering.zone, offering.charge_type)
            if key in wanted and key not in asked:
                await self._fetch(offering.zone, offering.charge_type, offering.instance_type)

    def _sold_out_zones(self, wanted: Mapping[tuple[str, str], float]) -> list[tuple[str, str]]:
        """(zone, charge type) with a pool in a capacity backoff: looked at more often, so the
        way back (backoff_lifted) starts soon after the stock does."""
        now = self.clock.now()
        return sorted(
            {
                (offering.zone, offering.charge_type)
                for (_, offering), block in self.backoff.blocks.items()
                if block.kind == "capacity" and block.active(now)
            }
            & set(wanted)
        )

    def _failed_since_last(self) -> list[Offering]:
        blocks = dict(self.backoff.blocks)
        fresh = {
            key[1]
            for key, block in blocks.items()
            if self._seen_blocks.get(key) is not block and block.kind in ("capacity", "price")
        }
        self._seen_blocks = blocks
        return sorted(fresh, key=str)

    async def _fetch(self, zone: str, charge_type: str, instance_type: str | None) -> bool:
        self.calls += 1
        asked_at = self.clock.now()
        try:
            pools = await self.client.describe_zone_instance_config_infos(
                zone=zone, instance_type=instance_type, charge_type=charge_type
            )
        except CloudError as exc:
            log.warning(
                Event.PRICE_REFRESH_FAILED, zone=zone, charge_type=charge_type, code=exc.code
            )
            return False
        self._store(pools, charge_type)
        self._lift_backoffs(pools, charge_type, asked_at)
        return True

    def _lift_backoffs(
        self, pools: list[PoolOffering], charge_type: str, asked_at: datetime
    ) -> None:
        """Stock is back where a launch failed for want of it: try again now, not at the end
        of a backoff that may have grown to SPOT_CONTROLLER_BACKOFF_MAX_S while it was gone."""
        for pool in pools:
            key = Offering(pool.zone, pool.instance_type, charge_type)
            if stock_level(self.market[key]) < 3:
                continue  # only plenty (EnoughStock): a pool with a few left would fail again
            for block in self.backoff.market_shows_stock(key, asked_at):
                log.info(
                    Event.BACKOFF_LIFTED,
                    pool=str(key),
                    stock_class=self.market[key].stock_class,
                    failures=block.failures,
                    was_until=block.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                )

    async def load(self, zone: str | None, instance_type: str | None, charge_type: str) -> None:
        """One call, narrowed as given; a failure is raised (a command shows it)."""
        self.calls += 1
        pools = await self.client.describe_zone_instance_config_infos(
            zone=zone, instance_type=instance_type, charge_type=charge_type
        )
        self._store(pools, charge_type)

    def _store(self, pools: list[PoolOffering], charge_type: str) -> None:
        stamp = self.clock.now()
        for pool in pools:
            key = Offering(pool.zone, pool.instance_type, charge_type)
            offer = market_offer(pool)
            self.market[key] = offer
            self.refreshed_at[key] = stamp
            if offer.price is not None:
                self.prices[key] = offer.price

    def blocked(self, offering: Offering, now: datetime) -> Block | None:
        """The backoff of a launch failed in ``offering`` (for every environment), in force."""
        block = self.backoff.blocks.get((None, offering))
        return block if block is not None and block.active(now) else None

    def rows(self) -> list[OfferingRow]:
        now = self.clock.now()
        rows = []
        for o in sorted(self.market, key=lambda o: (o.zone, o.instance_type, o.charge_type)):
            block = self.blocked(o, now)
            stamp = self.refreshed_at.get(o, datetime.fromtimestamp(0, UTC))
            until = block.until if block is not None else None
            rows.append(OfferingRow(o, self.market[o], stamp, until, block))
        return rows
