"""Market traces: a CSV of timed pool changes, replayed into the simulator's world.

Columns ``t_s,zone,instance_type,price,stock`` and optionally ``on_demand_price,
on_demand_stock`` (empty: unchanged). At ``t_s`` seconds after the replay starts the pool's
spot price and capacity become the row's (a pool the market lacks is created); a capacity
below the spot instances alive in the pool reclaims the excess, newest first, as a stock
shortage does. Rows may come in any order; equal times apply in file order.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.errors import ConfigError
from controller.simulator import commands, disruptions
from controller.simulator.instance import EndReason, State
from controller.simulator.market import INSTANCE_TYPE_PATTERN, ZONE_PATTERN
from controller.simulator.simulator import Simulator
from controller.simulator.state import World

COLUMNS = ("t_s", "zone", "instance_type", "price", "stock")
OPTIONAL = ("on_demand_price", "on_demand_stock")


@dataclass(frozen=True)
class TraceRow:
    t_s: float
    zone: str
    instance_type: str
    price: float
    stock: int
    on_demand_price: float | None = None
    on_demand_stock: int | None = None

    @property
    def pool(self) -> tuple[str, str]:
        return self.zone, self.instance_type


@dataclass(frozen=True)
class Trace:
    rows: tuple[TraceRow, ...]  # by time, stable

    @property
    def duration_s(self) -> float:
        return self.rows[-1].t_s if self.rows else 0.0

    @property
    def pools(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(r.pool for r in self.rows))

    def initial(self) -> dict[tuple[str, str], TraceRow]:
        """Each pool's first row: the market the replay starts from."""
        first: dict[tuple[str, str], TraceRow] = {}
        for row in self.rows:
            first.setdefault(row.pool, row)
        return first


def _number(raw: str, where: str, name: str, *, whole: bool = False) -> float:
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise ConfigError(f"{where}: {name} must be a {'whole ' if whole else ''}number") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {name} must be a finite number, 0 or more")
    return value


def parse_rows(lines: Iterable[str], source: str) -> Trace:
    reader = csv.DictReader(lines)
    header = tuple(reader.fieldnames or ())
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ConfigError(
            f"{source}: the header lacks {', '.join(missing)} (needs {','.join(COLUMNS)})"
        )
    unknown = [c for c in header if c not in COLUMNS + OPTIONAL]
    if unknown:
        raise ConfigError(f"{source}: unknown column {unknown[0]!r}")
    rows: list[TraceRow] = []
    for line, raw in enumerate(reader, start=2):
        where = f"{source} line {line}"
        zone, itype = (raw["zone"] or "").strip(), (raw["instance_type"] or "").strip()
        if not ZONE_PATTERN.match(zone):
            raise ConfigError(f"{where}: zone {zone!r} is malformed (e.g. ap-guangzhou-3)")
        if not INSTANCE_TYPE_PATTERN.match(itype):
            raise ConfigError(f"{where}: instance_type {itype!r} is malformed (e.g. S5.MEDIUM4)")
        price = _number(raw["price"], where, "price")
        if price <= 0:
            raise ConfigError(f"{where}: price must be greater than 0")
        od_price = (raw.get("on_demand_price") or "").strip()
        od_stock = (raw.get("on_demand_stock") or "").strip()
        rows.append(
            TraceRow(
                t_s=_number(raw["t_s"], where, "t_s"),
                zone=zone,
                instance_type=itype,
                price=price,
                stock=int(_number(raw["stock"], where, "stock", whole=True)),
                on_demand_price=_number(od_price, where, "on_demand_price") if od_price else None,
                on_demand_stock=int(_number(od_stock, where, "on_demand_stock", whole=True))
                if od_stock
                else None,
            )
        )
    if not rows:
        raise ConfigError(f"{source}: no rows")
    rows.sort(key=lambda r: r.t_s)
    return Trace(tuple(rows))


def load(path: str | Path) -> Trace:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return parse_rows(f, str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None


def write(path: str | Path, rows: Sequence[TraceRow]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(COLUMNS + OPTIONAL)
        for r in rows:
            out.writerow(
                [
                    f"{r.t_s:g}",
                    r.zone,
                    r.instance_type,
                    f"{r.price:.4f}",
                    r.stock,
                    "" if r.on_demand_price is None else f"{r.on_demand_price:.4f}",
                    "" if r.on_demand_stock is None else r.on_demand_stock,
                ]
            )


def apply_row(world: World, row: TraceRow, now: float) -> list[str]:
    """One row into the world; the ids of the instances it reclaimed."""
    update = commands.MarketUpdate(
        row.zone,
        row.instance_type,
        price=row.price,
        on_demand_price=row.on_demand_price,
        on_demand_stock=row.on_demand_stock,
    )
    disruptions.update_market(world, update, now)  # price (and creation); stock below
    pool = world.pools[row.pool]
    pool.capacity = row.stock
    spot = [
        i
        for i in world.alive.values()
        if i.zone == row.zone
        and i.instance_type == row.instance_type
        and i.charge_type == "SPOTPAID"
        and i.state != State.TERMINATING
    ]
    excess = len(spot) - row.stock
    if excess <= 0:
        return []
    running = sorted((i for i in spot if i.state == State.RUNNING), key=lambda i: -i.seq)
    victims = running[:excess]
    for instance in victims:
        world.begin_termination(instance, now, EndReason.RECLAIMED)
    return [i.instance_id for i in victims]


class TracePlayer:
    """Applies a trace's rows as the replay's clock reaches them (``t_s`` after its start),
    each at the world's time then (a trace may run faster than the simulator's clock)."""

    def __init__(self, sim: Simulator, trace: Trace) -> None:
        self.sim, self.trace = sim, trace
        self.next = 0
        self.reclaimed = 0

    def apply_due(self, elapsed_s: float) -> int:
        """Apply the rows due by ``elapsed_s``; how many instances they reclaimed."""
        rows = self.trace.rows
        reclaimed = 0
        with self.sim.lock:
            world = self.sim.advance_locked()
            while self.next < len(rows) and rows[self.next].t_s <= elapsed_s:
                row = rows[self.next]
                reclaimed += len(apply_row(world, row, world.now))
                self.next += 1
        self.reclaimed += reclaimed
        return reclaimed

    @property
    def done(self) -> bool:
        return self.next >= len(self.trace.rows)
