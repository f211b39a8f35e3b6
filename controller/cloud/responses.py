"""Reading CVM's answers: the envelope (error or result) and each action's typed result.

A field that is not what the API documents is :class:`Malformed`, reported as
``ResponseMalformed`` by :func:`read_envelope`; nothing here raises anything else.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from controller.cloud.classify import HTTP_PREFIX, RESPONSE_MALFORMED, classify
from controller.core.instances import SPOT, Instance, LaunchResult, PoolOffering

T = TypeVar("T")
JsonObject = dict[str, Any]


def describe_http_error(exc: httpx.HTTPError) -> str:
    """Class and text of an httpx error; its request (and Authorization header) stay behind."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


class Malformed(Exception):
    """A success envelope whose fields are not what the API documents."""


def read_envelope(
    action: str,
    response: httpx.Response,
    parse: Callable[[JsonObject], T],
    scrub: Callable[[str], str],
) -> T:
    """Turn one HTTP answer into a value or a classified error.

    API errors come with HTTP 200; any other status is a fault of the path (gateway,
    proxy), so it is transient whatever the body says. Unlike the SDK, the body is parsed
    whatever its Content-Type claims: an error is an error even as ``; charset=utf-8``.
    """
    envelope: object = None
    with contextlib.suppress(ValueError):
        envelope = json.loads(response.content)
    inner = envelope.get("Response") if isinstance(envelope, dict) else None
    request_id = None
    if isinstance(inner, dict) and isinstance(inner.get("RequestId"), str):
        request_id = inner["RequestId"]
    if response.status_code != 200:
        raise classify(
            f"{HTTP_PREFIX}{response.status_code}",
            f"HTTP {response.status_code} from the CVM endpoint",
            request_id=request_id,
            action=action,
        )
    if not isinstance(inner, dict):
        raise classify(
            RESPONSE_MALFORMED,
            "the body is not a JSON {'Response': {...}} envelope",
            request_id=request_id,
            action=action,
        )
    error = inner.get("Error")
    if error is not None:
        code = error.get("Code") if isinstance(error, dict) else None
        message = error.get("Message") if isinstance(error, dict) else None
        if not isinstance(code, str) or not code:
            raise classify(
                RESPONSE_MALFORMED,
                "an Error without a Code",
                request_id=request_id,
                action=action,
            )
        text = scrub(message if isinstance(message, str) else "")
        raise classify(code, text, request_id=request_id, action=action)
    try:
        return parse(inner)
    except Malformed as exc:
        raise classify(RESPONSE_MALFORMED, str(exc), request_id=request_id, action=action) from None


def _field(obj: Mapping[str, Any], key: str, kind: type[T], *, required: bool = False) -> T | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise Malformed(f"{key} is missing")
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # type: ignore[return-value]
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise Malformed(f"{key} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _required(obj: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = _field(obj, key, kind, required=True)
    assert value is not None
    return value


def _objects(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = _field(obj, key, list) or []
    if not all(isinstance(item, dict) for item in items):
        raise Malformed(f"{key} holds a non-object")
    return items


def _strings(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    items = _field(obj, key, list) or []
    if not all(isinstance(item, str) for item in items):
        raise Malformed(f"{key} holds a non-string")
    return tuple(items)


def _whole(value: object) -> int | None:
    """An informational count (vCPUs, GB): a fractional or odd value is unknown, not an error."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def _time(value: str | None) -> datetime | None:
    """``YYYY-MM-DDThh:mm:ssZ`` (UTC) as an aware datetime; ``None`` if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_launch(response: JsonObject) -> LaunchResult:
    return LaunchResult(
        instance_ids=_strings(response, "InstanceIdSet"),
        request_id=_field(response, "RequestId", str) or "",
    )


def parse_instance(item: Mapping[str, Any]) -> Instance:
    placement = _field(item, "Placement", dict) or {}
    tags = {}
    for tag in _objects(item, "Tags"):
        tags[_required(tag, "Key", str)] = _field(tag, "Value", str) or ""
    return Instance(
        instance_id=_required(item, "InstanceId", str),
        state=_field(item, "InstanceState", str) or "",
        zone=_field(placement, "Zone", str) or "",
        instance_type=_field(item, "InstanceType", str) or "",
        created_time=_time(_field(item, "CreatedTime", str)),
        tags=tags,
        image_id=_field(item, "ImageId", str),
        instance_name=_field(item, "InstanceName", str),
        charge_type=_field(item, "InstanceChargeType", str),
        latest_operation_error=_field(item, "LatestOperationErrorMsg", str) or None,
        private_ips=_strings(item, "PrivateIpAddresses"),
    )


def parse_instances_page(response: JsonObject) -> tuple[int, list[Instance]]:
    instances = [parse_instance(item) for item in _objects(response, "InstanceSet")]
    total = _field(response, "TotalCount", int)
    return (len(instances) if total is None else total), instances


def parse_status(response: JsonObject) -> dict[str, str]:
    return {
        _required(item, "InstanceId", str): _field(item, "InstanceState", str) or ""
        for item in _objects(response, "InstanceStatusSet")
    }


def parse_nothing(response: JsonObject) -> None:
    return None


def _price(price: Mapping[str, Any]) -> float | None:
    """The spot price of an ``ItemPrice``: the discounted one when Tencent gives it."""
    discounted = _field(price, "UnitPriceDiscount", float)
    return discounted if discounted is not None else _field(price, "UnitPrice", float)


def parse_offerings(response: JsonObject) -> list[PoolOffering]:
    offerings = []
    for item in _objects(response, "InstanceTypeQuotaSet"):
        price = _field(item, "Price", dict)
        offerings.append(
            PoolOffering(
                zone=_required(item, "Zone", str),
                instance_type=_required(item, "InstanceType", str),
                status=_field(item, "Status", str) or "",
                status_category=_field(item, "StatusCategory", str),
                unit_price=None if price is None else _price(price),
                cpu=_whole(item.get("Cpu")),
                memory=_whole(item.get("Memory")),
                charge_type=_field(item, "InstanceChargeType", str) or SPOT,
            )
        )
    return offerings


def parse_inquiry_price(response: JsonObject) -> float:
    price = _field(response, "Price", dict) or {}
    instance_price = _field(price, "InstancePrice", dict)
    value = None if instance_price is None else _price(instance_price)
    if value is None or not math.isfinite(value):
        raise Malformed("Price.InstancePrice has no unit price")
    return value
