"""The Market page and the create form's offers, against a running engine and the simulator.

The offering cache is the engine's own (filled by an environment with a capacity policy);
what the pages show is compared with the simulator's market, the ground truth. Without an
engine (the console alone), the form still works and says prices are not known yet.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx

from controller.service import Environments
from controller.service.billing import PAY_AS_YOU_GO_MODE, with_billing_mode
from tests.console.rig import Rig, console_rig, logged_in
from tests.support.polling import eventually
from tests.support.world import fast_simulator

ZONE = "ap-guangzhou-3"
SOLD_OUT = "SA2.MEDIUM4"  # no spot stock left in ZONE: a launch there fails and backs off
MARKET_COLUMNS = (
    *("zone", "instance_type", "charge_type", "status", "stock_class", "price"),
    *("price_per_vcpu", "cpu", "memory", "backoff", "unavailable_until", "refreshed_at"),
)
OFFER_COLUMNS = ("instance_type", "cpu", "memory", "spot_price", "stock_class")
EXAMPLE = {
    "zone": ZONE,
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": 1,
}


def _text(cell: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()


def _table(html: str, row_attr: str, columns: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The rows marked ``row_attr`` by that attribute's value, their cells by column."""
    rows = {}
    for key, body in re.findall(rf'<tr {row_attr}="([^"]+)">(.*?)</tr>', html, re.S):
        cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
        rows[key] = dict(zip(columns, cells, strict=False))
    return rows


def _market_rows(html: str) -> dict[str, dict[str, str]]:
    return _table(html, "data-offering", MARKET_COLUMNS)


def _offers(html: str, on_demand: bool) -> dict[str, dict[str, str]]:
    columns = (*OFFER_COLUMNS, "on_demand_price") if on_demand else OFFER_COLUMNS
    return _table(html, "data-type", columns)


def _per_vcpu(price: float, cpu: int) -> str:
    return str((Decimal(str(price)) / cpu).quantize(Decimal("0.0001")))


def _expected(rig: Rig, zone: str, instance_type: str, charge_type: str) -> dict[str, str]:
    """What the simulator sells: the row the Market page must show for this offering."""
    pool = rig.sim.world.pools[(zone, instance_type)]
    spot = charge_type == "SPOTPAID"
    price = pool.price if spot else pool.on_demand_price
    return {
        "status": pool.status if spot else ("SELL" if pool.on_demand_stock else "SOLD_OUT"),
        "stock_class": pool.status_category if spot else pool.on_demand_status_category,
        "price": str(Decimal(str(price))),
        "price_per_vcpu": _per_vcpu(price, pool.cpu),
        "cpu": str(pool.cpu),
        "memory": str(pool.memory),
    }


async def _start(rig: Rig) -> None:
    """A pay-as-you-go environment (its capacity policy makes the engine ask both charge
    types of ZONE) and a spot one in the pool without stock."""
    payg = with_billing_mode({**EXAMPLE, "name": "on-demand"}, PAY_AS_YOU_GO_MODE)
    await rig.environments.create(payg)
    await rig.environments.create({**EXAMPLE, "name": "sold-out", "instance_type": SOLD_OUT})


async def test_the_market_page_shows_the_simulators_market_and_the_backoff(
    database_url: str,
) -> None:
    sim = fast_simulator()
    sim.world.pools[(ZONE, SOLD_OUT)].capacity = 0
    # A long backoff, so the failed offering stays unavailable while the page is read.
    async with console_rig(database_url, sim=sim, backoff_base_s=120, backoff_max_s=240) as rig:
        await _start(rig)
        async with httpx.AsyncClient(base_url=rig.url, timeout=10) as http:
            await logged_in(http)
            blocked = f"{ZONE}/{SOLD_OUT}/SPOTPAID"

            async def backed_off() -> bool:
                rows = _market_rows((await http.get("/market", params={"zone": ZONE})).text)
                return bool(rows.get(blocked, {}).get("unavailable_until"))

            await eventually(backed_off, what="the sold-out offering backed off on the page")
            page = await http.get("/market", params={"zone": ZONE})
            assert page.status_code == 200
            assert 'href="/console/market"' in page.text  # the nav link
            rows = _market_rows(page.text)
            pools = [p for p in sim.world.pools.values() if p.zone == ZONE]
            spot_types = {p.instance_type for p in pools if p.spot}
            listed = {(r["instance_type"], r["charge_type"]) for r in rows.values()}
            assert {t for t, c in listed if c == "SPOTPAID"} == spot_types
            assert {t for t, c in listed if c == "POSTPAID_BY_HOUR"} == {
                p.instance_type for p in pools
            }
            assert {r["zone"] for r in rows.values()} == {ZONE}
            for row in rows.values():
                want = _expected(rig, ZONE, row["instance_type"], row["charge_type"])
                assert {k: row[k] for k in want} == want, row
            sold = rows[blocked]
            assert (sold["status"], sold["stock_class"]) == ("SOLD_OUT", "WithoutStock")
            kind, _, reason = sold["backoff"].partition(":")
            assert kind.strip() == "capacity"
            assert "ZoneSoldOut" in reason  # the simulator's refusal of the launch
            assert await rig.world.alive((await rig.environments.show("sold-out")).id) == []
            open_rows = [r for k, r in rows.items() if k != blocked]
            assert all(r["backoff"] == r["unavailable_until"] == "" for r in open_rows)

            # The filters select; the rows fragment (what the page polls) shows the same.
            spot_only = await http.get(
                "/market/rows",
                params={"zone": ZONE, "charge_type": "SPOTPAID"},
                headers={"X-Console-Fragment": "1"},
            )
            polled = _market_rows(spot_only.text)
            assert set(polled) == {k for k, r in rows.items() if r["charge_type"] == "SPOTPAID"}
            assert 'data-refresh="/console/market/rows?zone=ap-guangzhou-3"' in page.text
            elsewhere = await http.get("/market", params={"zone": "ap-guangzhou-6"})
            assert _market_rows(elsewhere.text) == {}
            assert "No offering matches these filters" in elsewhere.text
            everything = _market_rows((await http.get("/market")).text)
            assert set(everything) == set(rows)  # the engine asked about ZONE only


async def test_the_create_form_shows_each_types_prices_and_stock_in_the_zone(
    database_url: str,
) -> None:
    async with console_rig(database_url) as rig:
        await rig.environments.create(
            with_billing_mode({**EXAMPLE, "name": "on-demand"}, PAY_AS_YOU_GO_MODE)
        )
        async with httpx.AsyncClient(base_url=rig.url, timeout=10) as http:
            token = await logged_in(http)

            async def known() -> bool:
                answer = await http.get("/market/types", params={"zone": ZONE})
                return bool(_offers(answer.text, on_demand=False))

            await eventually(known, what="the engine's cache knows the zone")
            spot = await http.get("/market/types", params={"zone": ZONE, "billing_mode": "spot"})
            shown = _offers(spot.text, on_demand=False)
            assert "On-demand CNY/h" not in spot.text
            payg = await http.get(
                "/market/types", params={"zone": ZONE, "billing_mode": PAY_AS_YOU_GO_MODE}
            )
            with_on_demand = _offers(payg.text, on_demand=True)
            assert "On-demand CNY/h" in payg.text
            pools = {p.instance_type: p for p in rig.sim.world.pools.values() if p.zone == ZONE}
            assert set(shown) == set(with_on_demand) == set(pools)
            for instance_type, row in with_on_demand.items():
                pool = pools[instance_type]
                spot_price = str(Decimal(str(pool.price))) if pool.spot else "not known"
                spot_class = pool.status_category if pool.spot else "not known"
                assert row["spot_price"] == shown[instance_type]["spot_price"] == spot_price
                assert row["stock_class"] == spot_class
                assert row["on_demand_price"] == str(Decimal(str(pool.on_demand_price)))
                assert (row["cpu"], row["memory"]) == (str(pool.cpu), str(pool.memory))

            # The form itself: the offers of the zone sent come with it (here after an error),
            # and a zone the cache never asked about says so; neither stops the form.
            sent = {**EXAMPLE, "name": "a/b", "billing_mode": "spot", "csrf_token": token}
            wrong = await http.post("/environments", data=sent)
            assert wrong.status_code == 422
            assert _offers(wrong.text, on_demand=False) == shown
            assert 'list="type-list"' in wrong.text
            assert '<datalist id="type-list">' in wrong.text
            other = {**sent, "name": "guangzhou-6", "zone": "ap-guangzhou-6"}
            other["instance_type"] = "SA3.MEDIUM4"
            unknown = await http.get("/market/types", params={"zone": "ap-guangzhou-6"})
            assert "Prices are not known yet for ap-guangzhou-6" in unknown.text
            created = await http.post("/environments", data=other)
            assert created.status_code == 303
            assert (await rig.environments.show("guangzhou-6")).zone == "ap-guangzhou-6"


async def test_without_a_cache_the_form_works_and_says_prices_are_not_known(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    token = await logged_in(http)
    empty = await http.get("/environments/new")
    assert "Enter a zone to see the spot price" in empty.text
    offers = await http.get("/market/types", params={"zone": ZONE})
    assert f"Prices are not known yet for {ZONE}" in offers.text
    assert "asked about no zone so far" in offers.text
    market = await http.get("/market")
    assert market.status_code == 200
    assert "Prices are not known yet" in market.text
    form: dict[str, Any] = {**EXAMPLE, "name": "web", "billing_mode": "spot"}
    created = await http.post("/environments", data={**form, "csrf_token": token})
    assert created.status_code == 303
    (view,) = await envs.list()
    assert (view.zone, view.instance_type, view.desired_count) == (ZONE, "S2.MEDIUM4", 1)


async def test_the_market_needs_a_session(http: httpx.AsyncClient) -> None:
    for path in ("/market", "/market/rows", "/market/types"):
        fragment = await http.get(path, headers={"X-Console-Fragment": "1"})
        assert fragment.status_code == 401, path
        page = await http.get(path)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login")
