"""What is sent: one outbox event as a signed webhook POST, a WeCom or a DingTalk robot message.

- ``webhook``: a JSON body, and ``X-Spot-Controller-Signature: sha256=<hex>``, the HMAC-SHA256
  of ``<timestamp>.<body>`` under the target's secret, with the timestamp (unix seconds) in
  ``X-Spot-Controller-Timestamp``: a receiver checks both and refuses an old timestamp.
- ``wecom``: a group robot's ``{"msgtype": "markdown", "markdown": {"content": ...}}``
  (at most 4096 bytes).
- ``dingtalk``: a custom robot's ``{"msgtype": "markdown", "markdown": {"title", "text"}}``;
  with a secret, its signed mode: ``timestamp`` (ms) and ``sign`` (base64 of the HMAC-SHA256 of
  ``<timestamp>\\n<secret>`` under the secret) added to the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from controller import __version__
from controller.core.notices import TEST_EVENT

SIGNATURE_HEADER = "X-Spot-Controller-Signature"
TIMESTAMP_HEADER = "X-Spot-Controller-Timestamp"
EVENT_HEADER = "X-Spot-Controller-Event"
EVENT_ID_HEADER = "X-Spot-Controller-Event-Id"
WECOM_MAX_BYTES = 4096
DINGTALK_MAX_BYTES = 20000

SUMMARIES = {
    "COMPUTE_ENV_CREATED": "environment created",
    "COMPUTE_ENV_DELETED": "environment deleted",
    "COMPUTE_NODE_CREATED": "instance created",
    "COMPUTE_NODE_CREATION_FAILED": "instance could not be created",
    "COMPUTE_NODE_RUNNING": "instance running",
    "COMPUTE_NODE_ABNORMAL": "instance abnormal (stopped outside the controller)",
    "COMPUTE_NODE_DELETING": "instance being terminated",
    "COMPUTE_NODE_DELETED": "instance terminated",
    "COMPUTE_NODE_INTERRUPTED": "spot instance reclaimed",
    "COMPUTE_NODE_RELEASED": "instance released outside the controller",
    "COMPUTE_ENV_SHORT": "environment short of its desired count",
    "COMPUTE_ENV_BACKOFF": "every pool of the environment is backing off",
    "COMPUTE_ENV_ERROR": "environment in ERROR: needs a human",
    "COMPUTE_ENV_INVALID": "environment row is INVALID",
    "COMPUTE_ENV_COMPENSATION_STARTED": "pay-as-you-go compensation started",
    "COMPUTE_ENV_COMPENSATION_ENDED": "pay-as-you-go compensation ended",
    "COMPUTE_ENV_SPEND_CAP_REACHED": "environment reached its spend cap",
    TEST_EVENT: "test notification from spot-controller",
}
# Fields shown in a robot's message, in this order, after the environment.
SHOWN = (
    "status",
    "reason",
    "detail",
    "instance_id",
    "node_id",
    "count",
    "zone",
    "instance_type",
    "charge_type",
    "role",
    "running",
    "desired",
    "short_by",
    "since",
    "next_attempt_at",
    "cause",
)


@dataclass(frozen=True)
class OutboxEvent:
    """An outbox row, decoded."""

    event_id: str
    event: str
    env_id: str
    payload: Mapping[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxEvent:
        return cls(
            row["event_id"],
            row["event"],
            row["env_id"],
            json.loads(row["payload"]),
            row["created_at"],
        )


@dataclass(frozen=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(event: OutboxEvent, cluster: str) -> dict[str, Any]:
    """The webhook's JSON: the event, its environment, and its fields."""
    detail = {k: v for k, v in event.payload.items() if k != "env_name"}
    return {
        "id": event.event_id,
        "event": event.event,
        "time": _stamp(event.created_at),
        "cluster": cluster,
        "environment": {"id": event.env_id, "name": event.payload.get("env_name", "")},
        "summary": SUMMARIES.get(event.event, event.event),
        "detail": detail,
    }


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _title(event: OutboxEvent) -> str:
    name = event.payload.get("env_name") or event.env_id
    return f"{event.event} {name}".strip()


def markdown(event: OutboxEvent, cluster: str, line_break: str = "\n") -> str:
    lines = [
        f"### {SUMMARIES.get(event.event, event.event)}",
        f"**{event.event}**",
        f"> environment: {event.payload.get('env_name', '')} ({event.env_id})",
    ]
    for key in SHOWN:
        value = event.payload.get(key)
        if value is not None and value != "":
            lines.append(f"> {key}: {value}")
    lines.append(f"> cluster: {cluster}, at {_stamp(event.created_at)}, id {event.event_id}")
    return line_break.join(lines)


def _truncate(text: str, max_bytes: int) -> str:
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode(errors="ignore") + "..."


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def build(
    kind: str, url: str, secret: str | None, event: OutboxEvent, cluster: str, now: datetime
) -> Request:
    """The request for one attempt (a fresh timestamp and signature each time)."""
    base = {"Content-Type": "application/json", "User-Agent": f"spot-controller/{__version__}"}
    if kind == "wecom":
        content = _truncate(markdown(event, cluster), WECOM_MAX_BYTES)
        return Request(url, base, _json({"msgtype": "markdown", "markdown": {"content": content}}))
    if kind == "dingtalk":
        text = _truncate(markdown(event, cluster, "\n\n"), DINGTALK_MAX_BYTES)
        body = _json({"msgtype": "markdown", "markdown": {"title": _title(event), "text": text}})
        if secret:
            ms = str(int(now.timestamp() * 1000))
            url = add_query(url, {"timestamp": ms, "sign": dingtalk_sign(secret, ms)})
        return Request(url, base, body)
    body = _json(event_body(event, cluster))
    headers = {**base, EVENT_HEADER: event.event, EVENT_ID_HEADER: event.event_id}
    if secret:
        ts = str(int(now.timestamp()))
        headers[TIMESTAMP_HEADER] = ts
        headers[SIGNATURE_HEADER] = webhook_signature(secret, ts, body)
    return Request(url, headers, body)


def add_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
