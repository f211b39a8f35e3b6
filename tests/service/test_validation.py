"""The rules the service checks before anything is written, as a table.

Each case names the input, the field the refusal must name and words of its rule. The same
table runs pure (the validation functions) and through the service on each backend, where
the rows must be exactly as before the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from controller.errors import ValidationFailed
from controller.service import Environments
from controller.service.environments import validate_changes, validate_new_environment
from controller.store.store import Store
from tests.support.world import ENVIRONMENT

REGION = "ap-guangzhou"
VALID = ENVIRONMENT


@dataclass(frozen=True)
class Refused:
    values: dict[str, Any]
    field: str
    rule: str


NEW_ENVIRONMENT_CASES = {
    "count-negative": Refused({"desired_count": -1}, "desired_count", "from 0 to 2000, got -1"),
    "count-over-2000": Refused({"desired_count": 2001}, "desired_count", "from 0 to 2000"),
    "count-text": Refused({"desired_count": "three"}, "desired_count", "whole number"),
    "price-zero": Refused({"max_price": "0"}, "max_price", "greater than 0"),
    "price-text": Refused({"max_price": "abc"}, "max_price", "number of CNY per hour"),
    "price-nan": Refused({"max_price": "NaN"}, "max_price", "number of CNY per hour"),
    "zone-malformed": Refused({"zone": "guangzhou"}, "zone", "malformed"),
    "zone-other-region": Refused({"zone": "ap-shanghai-2"}, "zone", "not in the region"),
    "type-malformed": Refused({"instance_type": "s2-medium"}, "instance_type", "malformed"),
    "image-malformed": Refused({"image_id": "ubuntu"}, "image_id", "malformed"),
    "image-missing": Refused({"image_id": None}, "image_id", "malformed"),
    "name-empty": Refused({"name": "  "}, "name", "must not be empty"),
    "name-too-long": Refused({"name": "x" * 61}, "name", "at most 60 characters"),
    "name-slash": Refused({"name": "a/b"}, "name", "may contain only"),
    "vpc-without-subnet": Refused({"vpc_id": "vpc-0a1b2c3d"}, "vpc_id", "given together"),
    "security-group-malformed": Refused(
        {"security_group_ids": "sg-1,default"}, "security_group_ids", "malformed"
    ),
    "user-data-not-base64": Refused({"user_data": "not base64!"}, "user_data", "base64"),
    "tags-reserved": Refused({"tags": '{"spot-controller:env": "x"}'}, "tags", "reserved"),
    "tags-not-json": Refused({"tags": "team=ml"}, "tags", "JSON object"),
    "fallback-zone-other-region": Refused(
        {"fallback_zones": "ap-beijing-1"}, "fallback_zones", "not in the region"
    ),
    "unknown-field": Refused({"desired": 3}, "desired", "not a field a user can set"),
    "status-is-the-controllers": Refused({"status": "READY"}, "status", "not a field"),
}

CHANGE_CASES = {
    "count-negative": Refused({"desired_count": -1}, "desired_count", "got -1"),
    "subnet-without-vpc": Refused({"subnet_id": "subnet-0a1b2c3d"}, "vpc_id", "together"),
    "rename-empty": Refused({"name": ""}, "name", "must not be empty"),
    "nothing-to-change": Refused({}, "update", "at least one field"),
    "only-unset-fields": Refused({"zone": None}, "update", "at least one field"),
    "unknown-field": Refused({"running_count": 3}, "running_count", "not a field"),
}


@pytest.mark.parametrize("case", NEW_ENVIRONMENT_CASES.values(), ids=list(NEW_ENVIRONMENT_CASES))
def test_new_environment_refused_naming_field_and_rule(case: Refused) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_new_environment({**VALID, **case.values}, REGION)
    assert err.value.field == case.field
    assert case.rule in err.value.rule


@pytest.mark.parametrize("case", CHANGE_CASES.values(), ids=list(CHANGE_CASES))
def test_change_refused_naming_field_and_rule(case: Refused) -> None:
    current = {**VALID, "id": "env-0a1b2c3d", "status": "READY"}
    with pytest.raises(ValidationFailed) as err:
        validate_changes(current, case.values, REGION)
    assert err.value.field == case.field
    assert case.rule in err.value.rule


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({"max_price": "0.60"}, {"max_price": "0.6"}),
        ({"max_price": "1"}, {"max_price": "1.0"}),
        ({"max_price": " 2.50 "}, {"max_price": "2.5"}),
        ({"desired_count": "7"}, {"desired_count": 7}),
        ({"instance_name": None}, {}),  # unset fields are left to the database's default
    ],
    ids=["trailing-zero", "whole", "spaces", "count-as-text", "unset"],
)
def test_new_environment_normalised_as_the_store_keeps_it(
    given: dict[str, Any], stored: dict[str, Any]
) -> None:
    row = validate_new_environment({**VALID, **given}, REGION)
    normalised_valid = {**VALID, "max_price": "0.6"}
    expected = {k: v for k, v in {**normalised_valid, **given, **stored}.items() if v is not None}
    assert row == expected


@pytest.mark.parametrize("case", NEW_ENVIRONMENT_CASES.values(), ids=list(NEW_ENVIRONMENT_CASES))
async def test_create_refused_writes_nothing(store: Store, case: Refused) -> None:
    environments = Environments(store, REGION)
    await environments.create({**VALID, "name": "kept"})
    before = await store.list_environments()
    with pytest.raises(ValidationFailed) as err:
        await environments.create({**VALID, **case.values})
    assert err.value.field == case.field
    assert case.rule in err.value.rule
    assert await store.list_environments() == before


@pytest.mark.parametrize("case", CHANGE_CASES.values(), ids=list(CHANGE_CASES))
async def test_update_refused_keeps_the_row(store: Store, case: Refused) -> None:
    environments = Environments(store, REGION)
    created = await environments.create(VALID)
    before = await store.list_environments()
    with pytest.raises(ValidationFailed) as err:
        await environments.update(created.id, case.values)
    assert err.value.field == case.field
    assert case.rule in err.value.rule
    assert await store.list_environments() == before
