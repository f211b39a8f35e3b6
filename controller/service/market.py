"""The market as the offering cache sees it: the view the CLI and the console both show.

The rows come from whoever holds a cache (a running daemon's engine, or the ``offerings``
command's own); this module only shapes them. Filters select, never validate: a zone or
charge type nobody sells simply matches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, Self

from controller.core.backoff import Block
from controller.core.instances import ON_DEMAND, SPOT, Offering
from controller.core.placement import MarketOffer
from controller.service.views import View

PER_VCPU_PLACES = Decimal("0.0001")


class OfferingRow(Protocol):
    """One entry of an offering cache (``controller.reconcile.offerings.OfferingRow``)."""

    @property
    def offering(self) -> Offering: ...
    @property
    def offer(self) -> MarketOffer: ...
    @property
    def refreshed_at(self) -> datetime: ...
    @property
    def unavailable_until(self) -> datetime | None: ...
    @property
    def backoff(self) -> Block | None: ...


@dataclass(frozen=True)
class OfferingView(View):
    """One (zone, instance type, charge type) offering; prices in CNY per hour."""

    zone: str
    instance_type: str
    charge_type: str
    status: str  # SELL | SOLD_OUT
    stock_class: str | None  # StatusCategory: EnoughStock ... WithoutStock
    price: Decimal | None
    price_per_vcpu: Decimal | None
    cpu: int | None
    memory: int | None  # GB
    unavailable_until: datetime | None  # a failed launch's backoff, for every environment
    backoff: str | None  # that backoff's kind: capacity, price, ...
    backoff_reason: str | None
    refreshed_at: datetime

    @classmethod
    def of(cls, row: OfferingRow) -> Self:
        offer, block = row.offer, row.backoff
        per_vcpu = offer.per_vcpu()
        return cls(
            zone=row.offering.zone,
            instance_type=row.offering.instance_type,
            charge_type=row.offering.charge_type,
            status=offer.status,
            stock_class=offer.stock_class,
            price=offer.price,
            price_per_vcpu=None if per_vcpu is None else per_vcpu.quantize(PER_VCPU_PLACES),
            cpu=offer.cpu,
            memory=offer.memory,
            unavailable_until=row.unavailable_until,
            backoff=block.kind if block is not None else None,
            backoff_reason=block.reason if block is not None else None,
            refreshed_at=row.refreshed_at,
        )


@dataclass(frozen=True)
class TypeOffers:
    """One instance type of a zone, as the create form lists it: its spot and on-demand
    offerings where the cache knows them."""

    instance_type: str
    cpu: int | None
    memory: int | None
    spot: OfferingView | None
    on_demand: OfferingView | None


class Market:
    """The offerings of a cache, read at call time; no source means nothing known yet."""

    def __init__(self, source: Callable[[], Iterable[OfferingRow]] | None = None) -> None:
        self._source = source

    def offerings(
        self, zone: str | None = None, charge_type: str | None = None
    ) -> tuple[OfferingView, ...]:
        rows = self._source() if self._source is not None else ()
        views = (OfferingView.of(r) for r in rows)
        return tuple(
            v
            for v in views
            if (not zone or v.zone == zone) and (not charge_type or v.charge_type == charge_type)
        )

    def zones(self) -> tuple[str, ...]:
        return tuple(sorted({v.zone for v in self.offerings()}))

    def types_in(self, zone: str) -> tuple[TypeOffers, ...]:
        """The zone's instance types, by name, with what is known of each charge type."""
        by_type: dict[str, dict[str, OfferingView]] = {}
        for view in self.offerings(zone) if zone else ():
            by_type.setdefault(view.instance_type, {})[view.charge_type] = view
        out = []
        for instance_type, known in sorted(by_type.items()):
            spot, on_demand = known.get(SPOT), known.get(ON_DEMAND)
            sized = next(iter(known.values()))  # either charge type gives the size
            out.append(TypeOffers(instance_type, sized.cpu, sized.memory, spot, on_demand))
        return tuple(out)
