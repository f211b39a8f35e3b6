"""Message formats, signatures and masking, sent over real HTTP to a loopback receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest

from controller.notifications.delivery import Outcome, attempt, judge
from controller.notifications.messages import WECOM_MAX_BYTES, OutboxEvent
from controller.notifications.targets import mask_url, scrub
from tests.notifications.receiver import Receiver, receiving

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EVENT = OutboxEvent(
    "evt-0123456789abcdef0123456789abcdef",
    "COMPUTE_NODE_INTERRUPTED",
    "env-abcd1234",
    {
        "env_name": "web",
        "node_id": "node-aaaa1111",
        "instance_id": "ins-bbbb2222",
        "zone": "ap-guangzhou-3",
        "reason": "interrupted",
        "detail": "instance went TERMINATING without a request from the controller",
    },
    NOW,
)


def target(kind: str, url: str, secret: str | None) -> dict[str, object]:
    return {"name": "t", "kind": kind, "url": url, "secret": secret}


async def send(kind: str, rec: Receiver, url: str, secret: str | None) -> Outcome:
    async with httpx.AsyncClient() as http:
        result = await attempt(http, target(kind, url, secret), EVENT, "prod", NOW, 5.0)
    return result.outcome


async def test_webhook_is_signed_json_with_a_timestamp() -> None:
    with receiving() as rec:
        assert await send("webhook", rec, rec.url, "s3cret") == Outcome.DELIVERED
    [req] = rec.delivered()
    assert req.signature_ok("s3cret")
    assert not req.signature_ok("another")
    assert req.headers["x-spot-controller-timestamp"] == str(int(NOW.timestamp()))
    assert req.headers["x-spot-controller-event-id"] == EVENT.event_id
    body = req.json()
    assert body["id"] == EVENT.event_id
    assert body["event"] == "COMPUTE_NODE_INTERRUPTED"
    assert body["environment"] == {"id": "env-abcd1234", "name": "web"}
    assert body["cluster"] == "prod"
    assert body["detail"]["instance_id"] == "ins-bbbb2222"
    # A body changed in transit no longer matches its signature.
    tampered = type(req)(req.path, req.query, req.headers, req.body.replace(b"web", b"bad"))
    assert not tampered.signature_ok("s3cret")


async def test_wecom_robot_markdown_message() -> None:
    rec = Receiver(answer=b'{"errcode":0,"errmsg":"ok"}')
    with receiving(rec):
        url = rec.url + "?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
        assert await send("wecom", rec, url, None) == Outcome.DELIVERED
    [req] = rec.delivered()
    assert req.query == {"key": ["693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"]}
    body = req.json()
    assert set(body) == {"msgtype", "markdown"}
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert set(body["markdown"]) == {"content"}
    assert "COMPUTE_NODE_INTERRUPTED" in content
    assert "ins-bbbb2222" in content
    assert len(content.encode()) <= WECOM_MAX_BYTES


async def test_dingtalk_robot_signed_mode() -> None:
    rec = Receiver(answer=b'{"errcode":0,"errmsg":"ok"}')
    secret = "SEC0123456789abcdef"
    with receiving(rec):
        url = rec.url + "?access_token=tok123456"
        assert await send("dingtalk", rec, url, secret) == Outcome.DELIVERED
    [req] = rec.delivered()
    timestamp = req.query["timestamp"][0]
    assert timestamp == str(int(NOW.timestamp() * 1000))  # milliseconds
    # DingTalk's check: base64(HMAC-SHA256(key=secret, "timestamp\nsecret")), URL-decoded.
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    assert req.query["sign"] == [base64.b64encode(mac.digest()).decode()]
    assert req.query["access_token"] == ["tok123456"]
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "COMPUTE_NODE_INTERRUPTED web"
    assert "ins-bbbb2222" in body["markdown"]["text"]


async def test_dingtalk_without_secret_is_not_signed() -> None:
    rec = Receiver(answer=b'{"errcode":0,"errmsg":"ok"}')
    with receiving(rec):
        assert await send("dingtalk", rec, rec.url + "?access_token=t", None) == Outcome.DELIVERED
    assert "sign" not in rec.delivered()[0].query


@pytest.mark.parametrize(
    ("kind", "status", "body", "outcome"),
    [
        ("webhook", 200, b"", Outcome.DELIVERED),
        ("webhook", 204, b"", Outcome.DELIVERED),
        ("webhook", 500, b"", Outcome.RETRY),
        ("webhook", 503, b"", Outcome.RETRY),
        ("webhook", 429, b"", Outcome.RETRY),
        ("webhook", 408, b"", Outcome.RETRY),
        ("webhook", 404, b"", Outcome.REFUSED),
        ("webhook", 401, b"", Outcome.REFUSED),
        ("webhook", 301, b"", Outcome.REFUSED),
        ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', Outcome.DELIVERED),
        ("wecom", 200, b'{"errcode":45009,"errmsg":"api freq out of limit"}', Outcome.RETRY),
        ("wecom", 200, b'{"errcode":93000,"errmsg":"invalid webhook url"}', Outcome.REFUSED),
        ("wecom", 200, b"<html>", Outcome.REFUSED),
        ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', Outcome.DELIVERED),
        ("dingtalk", 200, b'{"errcode":130101,"errmsg":"send too fast"}', Outcome.RETRY),
        ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', Outcome.REFUSED),
    ],
)
def test_what_an_answer_means(kind: str, status: int, body: bytes, outcome: Outcome) -> None:
    assert judge(kind, status, body).outcome == outcome


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=abcdef123456",
            "https://oapi.dingtalk.com/robot/send?access_token=***",
        ),
        ("https://user:pw@hooks.example.com:8443/in", "https://***@hooks.example.com:8443/in"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX1234",
            "https://hooks.slack.com/services/T000/B000/***",
        ),
        ("http://127.0.0.1:9999/hook", "http://127.0.0.1:9999/hook"),
    ],
)
def test_urls_are_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_errors_are_scrubbed_of_tokens_and_secrets() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=abcdef123456"
    text = f"ConnectError: failed {url}&timestamp=1&sign=xyz with SECsecret and abcdef123456"
    cleaned = scrub(text, url, "SECsecret")
    assert "abcdef123456" not in cleaned
    assert "SECsecret" not in cleaned


async def test_a_refused_robot_answer_names_its_code_not_its_token() -> None:
    rec = Receiver(answer=json.dumps({"errcode": 93000, "errmsg": "invalid key"}).encode())
    with receiving(rec):
        url = rec.url + "?key=secret-robot-key-1234"
        async with httpx.AsyncClient() as http:
            result = await attempt(http, target("wecom", url, None), EVENT, "prod", NOW, 5.0)
    assert result.outcome == Outcome.REFUSED
    assert result.code == "errcode_93000"
    assert "secret-robot-key-1234" not in result.error
