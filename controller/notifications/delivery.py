"""One delivery attempt, and what its answer means: delivered, try again, or refused.

Robots answer HTTP 200 with ``{"errcode": N, "errmsg": ...}``: 0 is delivered; their rate
limits (WeCom 45009, DingTalk 130101: 20 messages a minute a robot) are tried again; any other
code is a refusal (a wrong key or token, a keyword or signature mismatch), like a 4xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx

from controller.notifications.messages import OutboxEvent, build
from controller.notifications.targets import scrub

RATE_LIMITED_ERRCODES = {"wecom": {45009}, "dingtalk": {130101, 130102}}
RETRIED_STATUSES = {408, 425, 429}


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a fault of the moment: 5xx, timeout, connection, rate limit
    REFUSED = "refused"  # the target said no: 4xx, a robot's error code


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    code: str  # for metrics: ok, http_503, errcode_93000, timeout, connect, ...
    error: str = ""  # masked: never the URL's token or the secret


def judge(kind: str, status: int, body: bytes) -> Result:
    if status >= 500 or status in RETRIED_STATUSES:
        return Result(Outcome.RETRY, f"http_{status}", f"HTTP {status}")
    if not 200 <= status < 300:
        return Result(Outcome.REFUSED, f"http_{status}", f"HTTP {status}")
    if kind == "webhook":
        return Result(Outcome.DELIVERED, "ok")
    try:
        answer: Any = json.loads(body)
        errcode = int(answer.get("errcode", -1))
        errmsg = str(answer.get("errmsg", ""))[:200]
    except (ValueError, AttributeError, TypeError):
        return Result(Outcome.REFUSED, "bad_answer", "the robot's answer is not its JSON")
    if errcode == 0:
        return Result(Outcome.DELIVERED, "ok")
    outcome = Outcome.RETRY if errcode in RATE_LIMITED_ERRCODES[kind] else Outcome.REFUSED
    return Result(outcome, f"errcode_{errcode}", f"errcode {errcode}: {errmsg}")


async def attempt(
    http: httpx.AsyncClient,
    target: dict[str, Any],
    event: OutboxEvent,
    cluster: str,
    now: datetime,
    timeout_s: float,
) -> Result:
    """POST the event once; never raises for the target's faults."""
    url, secret = target["url"], target["secret"]
    request = build(target["kind"], url, secret, event, cluster, now)
    try:
        response = await http.post(
            request.url, content=request.body, headers=dict(request.headers), timeout=timeout_s
        )
    except httpx.TimeoutException:
        return Result(Outcome.RETRY, "timeout", f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        text = scrub(scrub(f"{type(exc).__name__}: {exc}", request.url, secret), url, secret)
        return Result(Outcome.RETRY, "connect", text[:300])
    result = judge(target["kind"], response.status_code, response.content)
    if result.error:
        error = scrub(scrub(result.error, request.url, secret), url, secret)
        result = Result(result.outcome, result.code, error)
    return result
