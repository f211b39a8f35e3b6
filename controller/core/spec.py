"""Validation of a compute environment row into the launch spec the planner works with.

Pure: no I/O. The database checks what it can (ranges, uniqueness); everything it cannot
check is checked here and reported on the row as INVALID with the field and the rule,
so one bad row never stops the others.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from controller.core.capacity import (
    CAPACITY_COLUMNS,
    DEFAULT_CAPACITY,
    CapacityPolicy,
    validate_capacity,
)
from controller.core.instances import Offering
from controller.core.launch_options import validate_launch_options
from controller.core.placement import (
    DEFAULT_PLACEMENT,
    PLACEMENT_COLUMNS,
    PlacementPolicy,
    validate_placement,
)
from controller.core.regions import region_of_zone
from controller.errors import ValidationFailed

MAX_DESIRED_COUNT = 2000
MAX_INSTANCE_TYPES = 10  # BatchCompute InstanceTypes
MAX_NAME_LENGTH = 60
MAX_USER_DATA_BYTES = 16 * 1024
MAX_PRICE = Decimal("10000")
MAX_DESCRIPTION_LENGTH = 1000
RESERVED_TAG_PREFIX = "spot-controller:"

# Columns a user may set with the CLI (and the parser that checks each).
USER_COLUMNS = (
    "name",
    "zone",
    "instance_type",
    "image_id",
    "max_price",
    "desired_count",
    "fallback_instance_types",
    "fallback_zones",
    "instance_name",
    "security_group_ids",
    "vpc_id",
    "subnet_id",
    "key_ids",
    "user_data",
    "project_id",
    "tags",
    *CAPACITY_COLUMNS,
    *PLACEMENT_COLUMNS,
    "description",
    "terminate_node_ids",
    "launch_options",
)
STATUS_COLUMNS = (
    "status",
    "status_reason",
    "running_count",
    "pending_count",
    "launching_count",
    "next_attempt_at",
    "last_reconciled_at",
)

ZONE_RE = re.compile(r"^[a-z]+-[a-z]+(-[a-z]+)*-\d+$")
INSTANCE_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9]*[a-z]?\.[A-Z0-9]+$")
IMAGE_ID_RE = re.compile(r"^img-[a-z0-9]{8}$")
SECURITY_GROUP_RE = re.compile(r"^sg-[a-z0-9]{8}$")
VPC_RE = re.compile(r"^vpc-[a-z0-9]{8}$")
SUBNET_RE = re.compile(r"^subnet-[a-z0-9]{8}$")
KEY_ID_RE = re.compile(r"^skey-[a-z0-9]{8}$")
NODE_ID_RE = re.compile(r"^node-[a-z0-9]{8}$")
# Plain ASCII numbers of sane length only: int() and Decimal() also read "1_0" (10), "٣" (3),
# "NaN" and "1e-99999999" (> 0, yet formatted as "0"), which the CLI or a text value in a
# SQLite column lets through and which are no count or price a user meant.
INTEGER_RE = re.compile(r"[+-]?[0-9]{1,18}")
DECIMAL_RE = re.compile(r"[+-]?([0-9]{1,18}(\.[0-9]{0,18})?|\.[0-9]{1,18})([eE][+-]?[0-9]{1,3})?")


@dataclass(frozen=True)
class EnvironmentSpec:
    """A valid environment: what to keep alive and how to launch it."""

    id: str
    name: str
    desired_count: int
    offerings: tuple[Offering, ...]  # priority order: instance types first, then zones
    image_id: str
    max_price: str  # normalised decimal string, as RunInstances wants it
    instance_name: str | None = None
    project_id: int = 0
    security_group_ids: tuple[str, ...] = ()
    vpc_id: str | None = None
    subnet_id: str | None = None
    key_ids: tuple[str, ...] = ()
    user_data: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    capacity: CapacityPolicy = DEFAULT_CAPACITY
    placement: PlacementPolicy = DEFAULT_PLACEMENT
    zone_list: tuple[str, ...] = ()  # the zones in order (offerings may be empty: attributes)

    @property
    def zones(self) -> tuple[str, ...]:
        return self.zone_list or tuple(dict.fromkeys(o.zone for o in self.offerings))

    # Nodes to end first when the desired count is scaled in (TerminateComputeNodes).
    terminate_node_ids: frozenset[str] = frozenset()
    launch_options: str | None = None  # canonical JSON of RunInstances fields passed on

    def __repr__(self) -> str:  # user data may carry secrets
        return f"EnvironmentSpec(id={self.id!r}, name={self.name!r}, desired={self.desired_count})"


def _list(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def node_id_list(raw: Any) -> tuple[str, ...]:
    """The node ids of ``terminate_node_ids``, as written."""
    return _list(raw)


def _match(field_name: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    if not pattern.match(value):
        raise ValidationFailed(field_name, f"{value!r} is malformed (expected e.g. {example})")
    return value


# Names as Tencent's consoles take them: letters and digits of any script (测试环境, テスト環境,
# Übersetzung), combining accents, the ASCII space and '-', '_', '.'. Nothing else: no control
# or format character (zero-width, bidi overrides), no other space, no symbol (emoji among them:
# terminals disagree on their width), no punctuation that means something in a URL path, a
# shell, SQL or a table ('/', '\\', '?', '#', '%', quotes, '|').
NAME_PUNCTUATION = frozenset(" -_.")
# Letters and marks that show as nothing (Hangul fillers, the combining grapheme joiner,
# variation selectors): "web" and "web" + U+FE0F must not be two names that look the same.
INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u034f"
    + "".join(map(chr, range(0x180B, 0x1810)))
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
MAX_COMBINING_MARKS = 4  # a row of accents on one letter; more is "zalgo", taller than a line
NAME_RULE = (
    "may contain only letters and digits (of any language, e.g. 测试环境 or Café), "
    "combining accents, spaces, '-', '_' and '.'"
)


_UNNAMED = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
}


def _name_character_error(ch: str) -> str | None:
    """Why ``ch`` may not be in a name, or None if it may."""
    if ch in NAME_PUNCTUATION:
        return None
    category = unicodedata.category(ch)
    if category[0] in "LNM" and ch not in INVISIBLE:
        return None  # a mark's placement is checked by the caller
    label = unicodedata.name(ch, "") or f"({_UNNAMED.get(category, 'unnamed')})"
    code = f"U+{ord(ch):04X} {label}"
    # A visible character is shown; an invisible one (control, format, space) only by its code
    # point: it could hide in, or reorder, the line the message is printed in.
    shown = f"{ch!r} ({code})" if category[0] in "PS" else code
    return f"{NAME_RULE}; {shown} is not allowed"


def validate_name(raw: Any) -> str:
    """An environment name, checked as it is stored (never trimmed or rewritten).

    At most 60 characters (code points, as PostgreSQL counts them), in Unicode NFC so that one
    name has one spelling (``'é'`` one character, not ``'e'`` and a combining accent).
    """
    name = "" if raw is None else str(raw)
    if not name.strip():
        raise ValidationFailed("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            "name", f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if name != name.strip(" "):
        raise ValidationFailed("name", "must not start or end with a space")
    marks = 0
    for index, ch in enumerate(name):
        error = _name_character_error(ch)
        if error:
            raise ValidationFailed("name", error)
        if unicodedata.category(ch)[0] == "M":
            marks += 1
            if index == 0 or unicodedata.category(name[index - 1])[0] not in "LNM":
                raise ValidationFailed("name", "a combining accent must follow a letter or digit")
            if marks > MAX_COMBINING_MARKS:
                raise ValidationFailed(
                    "name", f"at most {MAX_COMBINING_MARKS} combining accents on one letter"
                )
        else:
            marks = 0
    if unicodedata.category(name[0])[0] not in "LN":
        raise ValidationFailed("name", "must start with a letter or digit")
    if not unicodedata.is_normalized("NFC", name):
        raise ValidationFailed(
            "name",
            "must be in composed form (Unicode NFC): write 'é' as one character, not 'e' "
            "followed by a combining accent",
        )
    return name


def validate_desired_count(raw: Any) -> int:
    text = "" if raw is None else str(raw).strip()
    if not INTEGER_RE.fullmatch(text):
        raise ValidationFailed(
            "desired_count", f"must be a whole number from 0 to {MAX_DESIRED_COUNT}, got {raw!r}"
        )
    count = int(text)
    if not 0 <= count <= MAX_DESIRED_COUNT:
        raise ValidationFailed(
            "desired_count", f"must be from 0 to {MAX_DESIRED_COUNT}, got {count}"
        )
    return count


def validate_max_price(raw: Any) -> str:
    text = "" if raw is None else str(raw).strip()
    if not DECIMAL_RE.fullmatch(text):
        raise ValidationFailed("max_price", f"must be a number of CNY per hour, got {raw!r}")
    price = Decimal(text)
    if price <= 0:
        raise ValidationFailed("max_price", f"must be greater than 0, got {raw!r}")
    if price > MAX_PRICE:
        raise ValidationFailed("max_price", f"must be at most {MAX_PRICE}, got {raw!r}")
    normalised = format(price.normalize(), "f")
    return normalised if "." in normalised else normalised + ".0"


def validate_zone(raw: Any, region: str, field_name: str = "zone") -> str:
    zone = _match(field_name, str(raw or "").strip(), ZONE_RE, "ap-guangzhou-3")
    if region_of_zone(zone) != region:
        raise ValidationFailed(field_name, f"{zone!r} is not in the region {region!r}")
    return zone


def validate_instance_type(raw: Any, field_name: str = "instance_type") -> str:
    return _match(field_name, str(raw or "").strip(), INSTANCE_TYPE_RE, "S5.MEDIUM4")


def validate_image_id(raw: Any) -> str:
    return _match("image_id", str(raw or "").strip(), IMAGE_ID_RE, "img-pmqg1cw7")


def validate_user_data(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if len(text) > MAX_USER_DATA_BYTES:
        raise ValidationFailed("user_data", "must be at most 16 KB of base64")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("user_data", "must be base64") from None
    return text


def validate_tags(raw: Any) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        tags = dict(raw)
    else:
        try:
            tags = json.loads(str(raw))
        except json.JSONDecodeError:
            raise ValidationFailed("tags", 'must be a JSON object such as {"team": "ml"}') from None
    if not isinstance(tags, dict):
        raise ValidationFailed("tags", 'must be a JSON object such as {"team": "ml"}')
    if len(tags) > 10:
        raise ValidationFailed("tags", "at most 10 tags")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ValidationFailed("tags", "keys and values must be non-empty strings")
        if key.startswith(RESERVED_TAG_PREFIX):
            raise ValidationFailed(
                "tags", f"keys starting with {RESERVED_TAG_PREFIX!r} are reserved"
            )
        if len(key) > 127 or len(value) > 255:
            raise ValidationFailed("tags", "keys are at most 127 and values 255 characters")
    return tags


def validate_description(raw: Any) -> str:
    text = "" if raw is None else str(raw)
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise ValidationFailed(
            "description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters, got {len(text)}"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in text):
        raise ValidationFailed("description", "must not contain control or format characters")
    return text


def parse_environment(row: Mapping[str, Any], region: str) -> EnvironmentSpec:
    """Validate a ``compute_environments`` row; ValidationFailed names the first bad field."""
    placement = validate_placement(row)
    types = []
    named = str(row.get("instance_type") or "").strip()
    if named or not placement.by_attributes:  # attributes may stand instead of a type
        if not named:
            raise ValidationFailed(
                "instance_type",
                "is required unless instance_cpu, instance_memory or instance_families is given",
            )
        types.append(validate_instance_type(named))
    for extra in _list(row.get("fallback_instance_types")):
        types.append(validate_instance_type(extra, "fallback_instance_types"))
    types = list(dict.fromkeys(types))
    if len(types) > MAX_INSTANCE_TYPES:
        raise ValidationFailed(
            "fallback_instance_types", f"at most {MAX_INSTANCE_TYPES} instance types in all"
        )
    zones = [validate_zone(row.get("zone"), region)]
    for extra in _list(row.get("fallback_zones")):
        zones.append(validate_zone(extra, region, "fallback_zones"))
    zones = list(dict.fromkeys(zones))
    security_groups = _list(row.get("security_group_ids"))
    for sg in security_groups:
        _match("security_group_ids", sg, SECURITY_GROUP_RE, "sg-0a1b2c3d")
    key_ids = _list(row.get("key_ids"))
    for key in key_ids:
        _match("key_ids", key, KEY_ID_RE, "skey-0a1b2c3d")
    vpc_id = (row.get("vpc_id") or "").strip() or None
    subnet_id = (row.get("subnet_id") or "").strip() or None
    if vpc_id:
        _match("vpc_id", vpc_id, VPC_RE, "vpc-0a1b2c3d")
    if subnet_id:
        _match("subnet_id", subnet_id, SUBNET_RE, "subnet-0a1b2c3d")
    if bool(vpc_id) != bool(subnet_id):
        raise ValidationFailed("vpc_id", "vpc_id and subnet_id must be given together")
    instance_name = (row.get("instance_name") or "").strip() or None
    if instance_name and len(instance_name) > 128:
        raise ValidationFailed("instance_name", "must be at most 128 characters")
    validate_description(row.get("description"))
    terminate_node_ids = _list(row.get("terminate_node_ids"))
    for node_id in terminate_node_ids:
        _match("terminate_node_ids", node_id, NODE_ID_RE, "node-0a1b2c3d")
    try:
        project_id = int(row.get("project_id") or 0)
    except (TypeError, ValueError):
        raise ValidationFailed("project_id", "must be a whole number") from None
    return EnvironmentSpec(
        id=str(row["id"]),
        name=validate_name(row.get("name")),
        desired_count=validate_desired_count(row.get("desired_count")),
        offerings=tuple(Offering(zone, itype) for itype in types for zone in zones),
        image_id=validate_image_id(row.get("image_id")),
        max_price=validate_max_price(row.get("max_price")),
        instance_name=instance_name,
        project_id=project_id,
        security_group_ids=security_groups,
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        key_ids=key_ids,
        user_data=validate_user_data(row.get("user_data")),
        tags=validate_tags(row.get("tags")),
        capacity=validate_capacity(row),
        placement=placement,
        zone_list=tuple(zones),
        terminate_node_ids=frozenset(terminate_node_ids),
        launch_options=validate_launch_options(row.get("launch_options")),
    )
