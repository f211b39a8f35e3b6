"""The create and edit forms: their fields, labels, and what a submitted form asks for.

No rule is checked here: a form's text goes to the service as it is (empty meaning "not
given"), and the service's ValidationFailed names the field an error is shown beside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.service.billing import MODES, SPOT_MODE
from controller.service.views import EnvironmentView


@dataclass(frozen=True)
class Field:
    name: str  # the service's field, and the input's name
    label: str
    hint: str = ""
    kind: str = "text"  # text, number, checkbox, textarea, billing
    placeholder: str = ""
    suggest: str = ""  # the id of a <datalist> of known values (the market's)


REQUIRED = (
    Field("name", "Name", "letters, digits, space, - _ . (up to 60)", placeholder="web"),
    Field(
        "zone",
        "Zone",
        "an availability zone that sells spot",
        placeholder="ap-guangzhou-3",
        suggest="zone-list",
    ),
    Field("billing_mode", "Billing mode", kind="billing"),
    Field(
        "instance_type",
        "Instance type",
        "prices and stock of the zone's types below",
        placeholder="S2.MEDIUM4",
        suggest="type-list",
    ),
    Field("image_id", "Image", "image id", placeholder="img-pmqg1cw7"),
    Field("max_price", "Max price", "highest spot bid, CNY per hour", placeholder="0.60"),
    Field("desired_count", "Desired count", "instances to keep alive, 0 to 2000", "number"),
)
OPTIONAL = (
    Field(
        "fallback_instance_types",
        "Fallback instance types",
        "comma-separated, tried in order when the first is sold out",
        placeholder="S5.MEDIUM4,SA2.MEDIUM4",
    ),
    Field("fallback_zones", "Fallback zones", "comma-separated", placeholder="ap-guangzhou-4"),
    Field("security_group_ids", "Security groups", "comma-separated sg- ids"),
    Field("vpc_id", "VPC", "vpc- id, with a subnet"),
    Field("subnet_id", "Subnet", "subnet- id, with a VPC"),
    Field("key_ids", "Login keys", "comma-separated skey- ids"),
    Field("instance_name", "Instance name"),
    Field("project_id", "Project id", kind="number", placeholder="0"),
    Field("user_data", "User data", "base64, at most 16 KB; never shown", "textarea"),
    Field("tags", "Tags", 'a JSON object, e.g. {"team": "batch"}'),
    Field("on_demand_base_count", "On-demand base count", "first N instances pay-as-you-go"),
    Field("on_demand_percentage", "On-demand percentage", "share of the rest pay-as-you-go, 0-100"),
    Field(
        "compensate_with_on_demand",
        "Compensate with on-demand",
        "fill a spot shortfall with pay-as-you-go until spot returns",
        "checkbox",
    ),
    Field("compensate_after_s", "Compensate after (s)", "0 to 86400, default 60"),
    Field("disruption_budget", "Disruption budget", "replacements at a time; default 10 %"),
    Field("max_hourly_spend", "Spend cap (CNY/h)", "no launch above this hourly spend"),
)
FIELDS = {f.name: f for f in (*REQUIRED, *OPTIONAL)}
EDITABLE = tuple(f for f in (*REQUIRED, *OPTIONAL) if f.name not in ("desired_count",))
# Columns whose empty text is a value (""), so an edit can clear them; the others are NULL
# or a number when unset, which the service has no way to set back yet.
CLEARABLE = {"fallback_instance_types", "fallback_zones", "security_group_ids", "key_ids"}


def submitted(form: Mapping[str, Any]) -> dict[str, str]:
    """The form's fields as text, stripped; a checkbox is "true" when ticked, "" when not."""
    values = {}
    for f in FIELDS.values():
        if f.kind == "checkbox":
            values[f.name] = "true" if form.get(f.name) else ""
        else:
            values[f.name] = str(form.get(f.name, "")).strip()
    return values


def to_create(values: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The billing mode and the service's fields: every non-empty field as given."""
    fields = {k: v for k, v in values.items() if k != "billing_mode" and v != ""}
    return values.get("billing_mode") or SPOT_MODE, fields


def shown(view: EnvironmentView) -> dict[str, str]:
    """An environment's current values as the edit form shows them."""
    values = {}
    for f in EDITABLE:
        if f.name == "billing_mode" or f.name == "user_data":
            values[f.name] = ""
            continue
        value = getattr(view, f.name)
        if f.kind == "checkbox":
            values[f.name] = "true" if str(value).lower() in ("1", "true", "t") else ""
        else:
            values[f.name] = "" if value is None else str(value)
    values["billing_mode"] = "pay-as-you-go" if _all_on_demand(view) else SPOT_MODE
    return values


def to_changes(current: Mapping[str, str], values: Mapping[str, str]) -> dict[str, Any]:
    """The fields the user changed. User data is kept unless new text is given."""
    changes: dict[str, Any] = {}
    for f in EDITABLE:
        if f.name == "billing_mode":
            continue
        new, old = values.get(f.name, ""), current.get(f.name, "")
        if new == old:
            continue
        if f.kind == "checkbox":
            changes[f.name] = new == "true"
        elif new != "" or f.name in CLEARABLE:
            changes[f.name] = new
    return changes


def _all_on_demand(view: EnvironmentView) -> bool:
    return str(view.on_demand_percentage) == "100"


BILLING_MODES = MODES
