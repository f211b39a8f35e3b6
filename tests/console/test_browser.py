"""The BatchCompute walkthrough in a real browser: Chromium, driven by Playwright.

Log in; a wrong field is shown beside itself and nothing is written; create Tencent's example
spot environment through the form; see it READY on the list (which refreshes by itself); its
Event log and Instance list; a reclaim in the simulator and its replacement; scale to 3;
delete. Every step is checked against the simulator's ground truth and the database rows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from controller.core.model import ENV_TAG
from controller.service.billing import PAY_AS_YOU_GO_MODE, with_billing_mode
from tests.console.rig import PASSWORD, READ_ONLY_PASSWORD, Rig, console_rig
from tests.support.polling import eventually
from tests.support.world import fast_simulator

WAIT_MS = 30_000  # the engine on a shared 2-core machine: generous, never a timing assertion
NAME = "guangzhou-spot"
EXAMPLE = {  # Tencent's documented example of a spot compute environment
    "Zone": "ap-guangzhou-3",
    "Instance type": "S2.MEDIUM4",
    "Image": "img-pmqg1cw7",
    "Max price": "0.60",
    "Desired count": "2",
}


async def _log_in(page: Page, rig: Rig, password: str, shots: Path) -> None:
    await page.goto(f"{rig.url}/")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.screenshot(path=shots / "1-login.png")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Compute environments")).to_be_visible()


async def _fill_create_form(page: Page, values: dict[str, str]) -> None:
    await page.get_by_label("Name", exact=True).fill(NAME)
    await page.get_by_label("Spot", exact=True).check()
    for label, value in values.items():
        await page.get_by_label(label, exact=True).fill(value)


def _live_instances(page: Page) -> Any:
    return page.locator("#instance-list tbody tr").filter(has_text="RUNNING")


async def _running_ids(page: Page) -> set[str]:
    rows = _live_instances(page)
    return {
        await rows.nth(i).get_attribute("data-instance") or "" for i in range(await rows.count())
    }


async def test_the_batchcompute_walkthrough_in_a_browser(
    database_url: str, browser: Any, screenshots: Path
) -> None:
    async with console_rig(database_url) as rig:
        context = await browser.new_context(viewport={"width": 1360, "height": 900})
        page = await context.new_page()
        await _log_in(page, rig, PASSWORD, screenshots)

        # Create, with a wrong field first: its error beside it, and no row written.
        await page.get_by_role("link", name="Create", exact=True).click()
        await _fill_create_form(page, {**EXAMPLE, "Max price": "-1"})
        await page.get_by_role("button", name="Create").click()
        price_field = page.locator('[data-field="max_price"]')
        await expect(price_field.locator(".error")).to_contain_text("max_price")
        await expect(price_field.get_by_label("Max price")).to_have_value("-1")
        assert await rig.store.list_environments() == []
        await page.locator("details").evaluate("d => d.open = true")
        await page.screenshot(path=screenshots / "2-create-error.png", full_page=True)
        await page.get_by_label("Max price", exact=True).fill(EXAMPLE["Max price"])
        await page.get_by_role("button", name="Create").click()

        # The list shows it READY without a reload (the rows are polled): a mark set on the
        # loaded page is still there when READY shows.
        row = page.locator(f'tr[data-env="{NAME}"]')
        await expect(row).to_have_count(1)
        await page.evaluate("window.loadedOnce = true")
        await expect(row.locator(".status")).to_have_text("READY", timeout=WAIT_MS)
        assert await page.evaluate("window.loadedOnce === true")
        await page.screenshot(path=screenshots / "3-list.png")
        (created,) = await rig.store.list_environments()
        env_id = created["id"]
        assert (created["zone"], created["instance_type"], created["image_id"]) == (
            "ap-guangzhou-3",
            "S2.MEDIUM4",
            "img-pmqg1cw7",
        )
        assert (str(created["max_price"]).rstrip("0"), created["desired_count"]) == ("0.6", 2)
        alive = await rig.world.alive(env_id)
        assert len(alive) == 2
        assert all(i["InstanceChargeType"] == "SPOTPAID" for i in alive)

        # Event log: the CREATE_COMPUTE_NODE activities.
        await row.get_by_role("link", name=NAME).click()
        await page.get_by_role("tab", name="Event log").click()
        creates = page.locator("#event-log tbody tr").filter(has_text="CREATE_COMPUTE_NODE")
        await expect(creates).to_have_count(2, timeout=WAIT_MS)
        await expect(creates.filter(has_text="SUCCEED")).to_have_count(2, timeout=WAIT_MS)
        await page.screenshot(path=screenshots / "4-event-log.png", full_page=True)

        # Instance list: 2 RUNNING, the simulator's own.
        await page.get_by_role("tab", name="Instance list").click()
        await expect(_live_instances(page)).to_have_count(2, timeout=WAIT_MS)
        first = await _running_ids(page)
        assert first == {i["InstanceId"] for i in await rig.world.alive(env_id)}

        # A reclaim in the simulator; the replacement appears in the list by itself.
        victim = sorted(first)[0]
        await page.evaluate("window.loadedOnce = true")
        await rig.world.admin("POST", "reclaim", {"instance_ids": [victim]})
        replaced = page.locator("#instance-list tbody tr").filter(has_text="RUNNING")
        await expect(replaced.filter(has_not_text=victim)).to_have_count(2, timeout=WAIT_MS)
        assert await page.evaluate("window.loadedOnce === true")
        second = await _running_ids(page)
        assert victim not in second
        assert len(second - first) == 1
        await eventually(lambda: _same(rig, env_id, second), what="ground truth = the list")
        await page.screenshot(path=screenshots / "5-instance-list.png", full_page=True)

        # Scale: a wrong count first (its error beside it, nothing written), then 3.
        await page.get_by_label("Desired count").fill("many")
        await page.get_by_role("button", name="Scale").click()
        await expect(page.locator("#scale-error")).to_contain_text("desired_count")
        unchanged = await rig.store.get_environment(env_id)
        assert unchanged is not None
        assert unchanged["desired_count"] == 2
        await page.get_by_label("Desired count").fill("3")
        await page.get_by_role("button", name="Scale").click()
        await expect(_live_instances(page)).to_have_count(3, timeout=WAIT_MS)
        scaled = await rig.store.get_environment(env_id)
        assert scaled is not None
        assert scaled["desired_count"] == 3
        await eventually(lambda: _running(rig, env_id, 3), what="3 running in the simulator")
        await page.reload()  # the chart is drawn with the page: this one shows the scale
        await expect(_live_instances(page)).to_have_count(3, timeout=WAIT_MS)
        await page.screenshot(path=screenshots / "6-scaled.png", full_page=True)

        # Edit the spec: a new bid, for new launches; the instances stay.
        await page.get_by_role("link", name="Edit spec").click()
        await expect(page.get_by_label("Image", exact=True)).to_have_value("img-pmqg1cw7")
        await page.get_by_label("Max price", exact=True).fill("0.70")
        await page.screenshot(path=screenshots / "7-edit.png", full_page=True)
        await page.get_by_role("button", name="OK").click()
        await expect(page.locator("dl.spec")).to_contain_text("0.7 CNY/h")
        edited = await rig.store.get_environment(env_id)
        assert edited is not None
        assert str(edited["max_price"]).rstrip("0") == "0.7"
        assert await rig.world.running(env_id) == 3

        # Delete: the confirmation names the environment and its 3 instances.
        await page.get_by_role("link", name="Delete").click()
        warning = page.locator("#delete-warning")
        await expect(warning).to_contain_text(NAME)
        await expect(warning).to_contain_text("terminates its 3 instances")
        await page.screenshot(path=screenshots / "8-delete.png")
        await page.get_by_role("button", name=f"Delete {NAME}").click()
        await expect(page.locator(f'tr[data-env="{NAME}"]')).to_have_count(0)
        assert await rig.store.get_environment(env_id) is None
        await eventually(lambda: _running(rig, env_id, 0), what="its instances terminated")
        await context.close()


async def _same(rig: Rig, env_id: str, listed: set[str]) -> bool:
    return {i["InstanceId"] for i in await rig.world.alive(env_id)} == listed


async def _running(rig: Rig, env_id: str, count: int) -> bool:
    alive = await rig.world.alive(env_id)
    return len(alive) == count and all(i["InstanceState"] == "RUNNING" for i in alive)


async def test_a_read_only_login_sees_everything_and_has_nothing_to_change(
    sqlite_url: str, browser: Any, screenshots: Path
) -> None:
    async with console_rig(sqlite_url) as rig:
        env = await rig.environments.create(
            {
                "name": "batch",
                "zone": "ap-guangzhou-3",
                "instance_type": "S2.MEDIUM4",
                "image_id": "img-pmqg1cw7",
                "max_price": "0.60",
                "desired_count": 1,
            }
        )
        page = await browser.new_page()
        await _log_in(page, rig, READ_ONLY_PASSWORD, screenshots / "read-only")
        await expect(page.get_by_text("Read-only login")).to_be_visible()
        row = page.locator('tr[data-env="batch"]')
        await expect(row.locator(".status")).to_have_text("READY", timeout=WAIT_MS)
        await expect(page.get_by_role("link", name="Create", exact=True)).to_have_count(0)
        await row.get_by_role("link", name="batch").click()
        await page.get_by_role("tab", name="Instance list").click()
        await expect(_live_instances(page)).to_have_count(1, timeout=WAIT_MS)
        for name in ("Scale", "Edit spec", "Delete"):
            await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
            await expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
        await page.screenshot(path=screenshots / "read-only" / "detail.png", full_page=True)
        assert [i["Tags"][ENV_TAG] for i in await rig.world.alive(env.id)] == [env.id]
        await page.close()


async def test_the_market_page_and_the_create_forms_offers_in_a_browser(
    sqlite_url: str, browser: Any, screenshots: Path
) -> None:
    sim = fast_simulator()
    sim.world.pools[("ap-guangzhou-3", "SA5.MEDIUM4")].capacity = 0  # a launch there backs off
    async with console_rig(sqlite_url, sim=sim, backoff_base_s=120, backoff_max_s=240) as rig:
        # Pay-as-you-go: its capacity policy makes the engine ask both charge types of the zone.
        spec = {
            "name": "on-demand",
            "zone": "ap-guangzhou-3",
            "instance_type": "S2.MEDIUM4",
            "image_id": "img-pmqg1cw7",
            "max_price": "0.60",
            "desired_count": 1,
        }
        await rig.environments.create(with_billing_mode(spec, PAY_AS_YOU_GO_MODE))
        await rig.environments.create({**spec, "name": "sold-out", "instance_type": "SA5.MEDIUM4"})
        page = await browser.new_page(viewport={"width": 1360, "height": 900})
        await _log_in(page, rig, PASSWORD, screenshots / "market")
        pool = rig.sim.world.pools[("ap-guangzhou-3", "SA2.MEDIUM4")]

        # The create form follows the zone typed, and the billing mode chosen.
        await page.get_by_role("link", name="Create", exact=True).click()
        await expect(page.locator("#offers-none")).to_be_visible()
        await page.get_by_label("Zone", exact=True).fill("ap-guangzhou-3")
        offer = page.locator('#type-offers tr[data-type="SA2.MEDIUM4"]')
        await expect(offer.locator(".spot-price")).to_have_text(str(pool.price), timeout=WAIT_MS)
        await expect(offer.locator(".stock-class")).to_have_text(pool.status_category)
        await expect(offer.locator(".on-demand-price")).to_have_count(0)
        await page.get_by_label("Pay-as-you-go", exact=True).check()
        await expect(offer.locator(".on-demand-price")).to_have_text(str(pool.on_demand_price))
        await offer.get_by_role("button", name="Use").click()
        await expect(page.get_by_label("Instance type", exact=True)).to_have_value("SA2.MEDIUM4")
        await page.screenshot(path=screenshots / "market" / "create-offers.png", full_page=True)

        # The Market page, from the nav; the charge type filter is sent when chosen.
        await page.get_by_role("navigation").get_by_role("link", name="Market").click()
        await expect(page.get_by_role("heading", name="Market")).to_be_visible()
        row = page.locator('tr[data-offering="ap-guangzhou-3/SA2.MEDIUM4/SPOTPAID"]')
        await expect(row.locator(".price")).to_have_text(str(pool.price))
        await page.get_by_label("Charge type").select_option("POSTPAID_BY_HOUR")
        await expect(page).to_have_url(re.compile(r"charge_type=POSTPAID_BY_HOUR"))
        await expect(row).to_have_count(0)
        on_demand = page.locator('tr[data-offering="ap-guangzhou-3/SA2.MEDIUM4/POSTPAID_BY_HOUR"]')
        await expect(on_demand.locator(".price")).to_have_text(str(pool.on_demand_price))
        await page.get_by_label("Charge type").select_option("SPOTPAID")
        await expect(on_demand).to_have_count(0)
        sold = page.locator('tr[data-offering="ap-guangzhou-3/SA5.MEDIUM4/SPOTPAID"]')
        await expect(sold.locator(".backoff")).to_contain_text("capacity", timeout=WAIT_MS)
        await expect(sold.locator(".until")).not_to_be_empty()
        await expect(sold).to_contain_text("WithoutStock")
        await page.screenshot(path=screenshots / "market" / "market-spot.png", full_page=True)
        await page.get_by_label("Charge type").select_option("")
        await expect(row).to_have_count(1)
        await expect(on_demand).to_have_count(1)

        # The rows refresh by themselves: a launch refused after the page loaded shows its
        # backoff without a reload.
        await page.evaluate("window.loadedOnce = true")
        rig.sim.world.pools[("ap-guangzhou-3", "SA2.LARGE8")].capacity = 0
        await rig.environments.create({**spec, "name": "later", "instance_type": "SA2.LARGE8"})
        later = page.locator('tr[data-offering="ap-guangzhou-3/SA2.LARGE8/SPOTPAID"]')
        await expect(later.locator(".backoff")).to_contain_text("capacity", timeout=WAIT_MS)
        assert await page.evaluate("window.loadedOnce === true")
        await page.screenshot(path=screenshots / "market" / "market.png", full_page=True)
        await page.close()
