"""The create and edit forms: the service's error beside the field it names, nothing written;
the billing mode; the optional fields; paging of the Event log."""

from __future__ import annotations

import re

import httpx
import pytest

from controller.service import Environments
from tests.console.rig import console_rig, csrf_of, logged_in
from tests.support.polling import eventually

EXAMPLE = {
    "name": "guangzhou-spot",
    "zone": "ap-guangzhou-3",
    "billing_mode": "spot",
    "instance_type": "S2.MEDIUM4",
    "image_id": "img-pmqg1cw7",
    "max_price": "0.60",
    "desired_count": "2",
}


def _error_beside(html: str, field: str) -> str:
    """The text of the error shown inside the field's own block."""
    block = re.search(
        rf'data-field="{field}">(.*?)</div>\s*(?=<div class="field|</div>)', html, re.S
    )
    assert block, f"no field {field}"
    error = re.search(r'<p class="error"[^>]*>(.*?)</p>', block.group(1), re.S)
    assert error, f"no error beside {field}"
    return error.group(1)


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"zone": "nowhere"}, "zone", "zone"),
        ({"zone": "ap-shanghai-2"}, "zone", "ap-guangzhou"),
        ({"instance_type": "s2 medium"}, "instance_type", "instance_type"),
        ({"image_id": "ubuntu"}, "image_id", "image_id"),
        ({"max_price": "abc"}, "max_price", "max_price"),
        ({"desired_count": "2001"}, "desired_count", "desired_count"),
        ({"name": "a/b"}, "name", "name"),
        ({"billing_mode": "free"}, "billing_mode", "Spot or Pay-as-you-go"),
        ({"on_demand_percentage": "101"}, "on_demand_percentage", "0 to 100"),
        (
            {"billing_mode": "pay-as-you-go", "on_demand_percentage": "50"},
            "on_demand_percentage",
            "Pay-as-you-go",
        ),
        ({"compensate_after_s": "-1"}, "compensate_after_s", "compensate_after_s"),
        ({"max_hourly_spend": "0"}, "max_hourly_spend", "max_hourly_spend"),
        ({"vpc_id": "vpc-0a1b2c3d"}, "vpc_id", "subnet_id"),
        ({"tags": "{not json"}, "tags", "tags"),
    ],
)
async def test_a_wrong_field_shows_its_error_beside_it_and_nothing_is_written(
    http: httpx.AsyncClient, envs: Environments, changes: dict[str, str], field: str, says: str
) -> None:
    token = await logged_in(http)
    answer = await http.post("/environments", data={**EXAMPLE, **changes, "csrf_token": token})
    assert answer.status_code == 422
    assert says in _error_beside(answer.text, field)
    assert "Nothing was created" in answer.text
    for key, value in changes.items():  # the form comes back as it was sent
        if key != "billing_mode":
            assert f'value="{value}"' in answer.text.replace("&#34;", '"') or value in answer.text
    assert await envs.list() == ()


async def test_pay_as_you_go_and_the_optional_fields_reach_the_row(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    token = await logged_in(http)
    form = {
        **EXAMPLE,
        "billing_mode": "pay-as-you-go",
        "fallback_instance_types": "S5.MEDIUM4, SA2.MEDIUM4",
        "on_demand_base_count": "1",
        "compensate_with_on_demand": "true",
        "compensate_after_s": "30",
        "max_hourly_spend": "5",
        "tags": '{"team": "batch"}',
        "csrf_token": token,
    }
    answer = await http.post("/environments", data=form)
    assert answer.status_code == 303, answer.text
    (row,) = [await envs.store.get_environment("guangzhou-spot")]
    assert row is not None
    assert row["on_demand_percentage"] == 100
    assert row["on_demand_base_count"] == 1
    assert row["compensate_with_on_demand"] is True
    assert row["compensate_after_s"] == 30
    assert str(row["max_hourly_spend"]).startswith("5")
    assert row["fallback_instance_types"] == "S5.MEDIUM4, SA2.MEDIUM4"
    listing = await http.get("/environments")
    assert "Pay-as-you-go" in listing.text


async def test_edit_spec_changes_what_changed_and_refuses_a_wrong_field(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    env = await envs.create({k: v for k, v in EXAMPLE.items() if k != "billing_mode"})
    token = await logged_in(http)
    page = await http.get(f"/environments/{env.id}/edit")
    assert 'value="img-pmqg1cw7"' in page.text
    sent = {**EXAMPLE, "max_price": "0.80", "fallback_zones": "ap-guangzhou-4"}
    sent.pop("desired_count")
    done = await http.post(f"/environments/{env.id}/edit", data={**sent, "csrf_token": token})
    assert done.status_code == 303, done.text
    row = await envs.show(env.id)
    assert (row.max_price.rstrip("0"), row.fallback_zones) == ("0.8", "ap-guangzhou-4")
    before = row.to_json()
    bad = await http.post(
        f"/environments/{env.id}/edit", data={**sent, "image_id": "nope", "csrf_token": token}
    )
    assert bad.status_code == 422
    assert "image_id" in _error_beside(bad.text, "image_id")
    assert "Nothing was changed" in bad.text
    assert (await envs.show(env.id)).to_json() == before


async def test_a_wrong_desired_count_changes_nothing(
    http: httpx.AsyncClient, envs: Environments
) -> None:
    env = await envs.create({k: v for k, v in EXAMPLE.items() if k != "billing_mode"})
    token = await logged_in(http)
    for desired in ("-1", "many", "2001"):
        answer = await http.post(
            f"/environments/{env.id}/scale", data={"desired_count": desired, "csrf_token": token}
        )
        assert answer.status_code == 422
        assert "desired_count" in answer.text
    assert (await envs.show(env.id)).desired_count == 2


async def test_the_event_log_is_paged_newest_first(sqlite_url: str) -> None:
    async with console_rig(sqlite_url) as rig:
        env = await rig.environments.create(
            {k: v for k, v in {**EXAMPLE, "desired_count": "25"}.items() if k != "billing_mode"}
        )

        async def all_recorded() -> bool:
            return len(await rig.environments.activities(env.id, 100)) == 25

        await eventually(all_recorded, what="25 activities")
        async with httpx.AsyncClient(base_url=rig.url, timeout=10) as http:
            await logged_in(http)
            first = await http.get(f"/environments/{env.id}", params={"tab": "events"})
            second = await http.get(f"/environments/{env.id}", params={"tab": "events", "page": 2})
        ids = [
            re.findall(r'<td class="mono">(act-[a-z0-9]+)</td>', p.text) for p in (first, second)
        ]
        assert [len(i) for i in ids] == [20, 5]
        assert "Older" in first.text
        assert "Newer" in second.text
        expected = [a.id for a in await rig.environments.activities(env.id, 100)]
        assert ids[0] + ids[1] == expected  # newest first, no row twice or missing
        assert csrf_of(first.text)
