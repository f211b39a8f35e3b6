"""Retry policy, fault wrapping, deadlines, the in-flight cap, and secrets kept out of sight."""

from __future__ import annotations

import json
from random import Random
from typing import Any

import anyio
import httpx
import pytest
import structlog

from controller.cloud.client import CvmClient
from controller.errors import (
    AuthError,
    CloudError,
    PriceTooLow,
    Throttled,
    TransientError,
)
from controller.secrets import Secret
from tests.cloud.cloud_fakes import (
    LAUNCH,
    SECRET_ID,
    SECRET_KEY,
    SESSION_TOKEN,
    Wire,
    api_error,
    client_for,
    make_settings,
    ok,
)


class Sleeps:
    """Records backoff sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await anyio.lowlevel.checkpoint()


def retry_client(wire: Wire, sleeps: Sleeps, **overrides: Any) -> CvmClient:
    settings = make_settings(cvm_retry_base_s=0.2, cvm_retry_max_s=1.0, **overrides)
    return CvmClient(settings, transport=httpx.MockTransport(wire), sleep=sleeps, random=Random(7))


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    client = CvmClient(make_settings(cvm_retry_base_s=0.2, cvm_retry_max_s=1.0), random=Random(1))
    for retry, cap in [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.0), (10, 1.0), (500, 1.0)]:
        samples = [client.backoff_s(retry) for _ in range(2000)]
        assert min(samples) >= 0.0
        assert max(samples) <= cap
        # Full jitter: the whole window is used, not just its upper half.
        assert min(samples) < cap * 0.05
        assert max(samples) > cap * 0.95


async def test_transient_faults_are_retried_up_to_max_attempts() -> None:
    wire = Wire(lambda r: httpx.Response(503, text="<html>busy</html>"))
    sleeps = Sleeps()
    async with retry_client(wire, sleeps, cvm_max_attempts=4) as client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances_status(["ins-00000001"])
    assert info.value.code == "Http.503"
    assert info.value.action == "DescribeInstancesStatus"
    assert len(wire.requests) == 4
    assert len(sleeps.delays) == 3
    for retry, delay in enumerate(sleeps.delays):
        assert 0.0 <= delay <= min(1.0, 0.2 * 2**retry)
    assert client.stats == {("DescribeInstancesStatus", "Http.503"): 4}


async def test_one_attempt_means_no_retry() -> None:
    wire = Wire(lambda r: api_error("InternalError"))
    sleeps = Sleeps()
    async with retry_client(wire, sleeps, cvm_max_attempts=1) as client:
        with pytest.raises(TransientError):
            await client.terminate_instances(["ins-00000001"])
    assert len(wire.requests) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("InvalidParameterValue.InsufficientPrice", PriceTooLow),
        ("ResourceInsufficient.SpecifiedInstanceType", CloudError),
        ("LimitExceeded.SpotQuota", CloudError),
        ("AuthFailure.SignatureFailure", AuthError),
        ("InvalidImageId.NotFound", CloudError),
        ("SomethingUnknown", CloudError),
    ],
)
async def test_non_retryable_errors_are_raised_after_one_attempt(
    code: str, cls: type[CloudError]
) -> None:
    wire = Wire(lambda r: api_error(code, request_id="req-42"))
    sleeps = Sleeps()
    async with retry_client(wire, sleeps) as client:
        with pytest.raises(cls) as info:
            await client.run_instances(LAUNCH)
    assert info.value.code == code
    assert info.value.request_id == "req-42"
    assert info.value.action == "RunInstances"
    assert len(wire.requests) == 1
    assert sleeps.delays == []


async def test_throttling_is_retried_then_succeeds_and_counted() -> None:
    answers = [api_error("RequestLimitExceeded"), api_error("InternalError"), ok({})]
    wire = Wire(lambda r: answers.pop(0))
    sleeps = Sleeps()
    async with retry_client(wire, sleeps) as client:
        await client.terminate_instances(["ins-00000001"])
    assert len(wire.requests) == 3
    assert client.stats == {
        ("TerminateInstances", "RequestLimitExceeded"): 1,
        ("TerminateInstances", "InternalError"): 1,
        ("TerminateInstances", "OK"): 1,
    }


async def test_throttled_to_the_end_raises_throttled() -> None:
    wire = Wire(lambda r: api_error("RequestLimitExceeded.UinLimitExceeded"))
    async with retry_client(wire, Sleeps(), cvm_max_attempts=3) as client:
        with pytest.raises(Throttled):
            await client.describe_instances(filters={})
    assert len(wire.requests) == 3


async def test_launch_retry_resends_the_same_bytes_and_token_freshly_signed() -> None:
    answers = [
        httpx.Response(502),
        api_error("RequestLimitExceeded"),
        ok({"InstanceIdSet": ["ins-aaaaaaaa"]}),
    ]
    wire = Wire(lambda r: answers.pop(0))
    ticks = iter(range(1_700_000_000, 1_700_000_100, 7))
    settings = make_settings()
    client = CvmClient(
        settings,
        transport=httpx.MockTransport(wire),
        sleep=Sleeps(),
        wall_clock=lambda: float(next(ticks)),
    )
    async with client:
        result = await client.run_instances(LAUNCH)
    assert result.instance_ids == ("ins-aaaaaaaa",)
    bodies = {r.content for r in wire.requests}
    assert len(bodies) == 1
    assert {json.loads(b)["ClientToken"] for b in bodies} == {LAUNCH.client_token}
    timestamps = [r.headers["X-TC-Timestamp"] for r in wire.requests]
    assert len(set(timestamps)) == 3
    assert len({r.headers["Authorization"] for r in wire.requests}) == 3


async def test_httpx_timeout_becomes_a_transient_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    wire = Wire(handler)
    async with retry_client(wire, Sleeps(), cvm_max_attempts=2) as client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances_status(["ins-00000001"])
    assert info.value.code == "Network.Timeout"
    assert len(wire.requests) == 2


async def test_hanging_server_hits_the_hard_deadline() -> None:
    """ASGITransport ignores httpx timeouts: only the client's own deadline ends the wait."""

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    settings = make_settings(cvm_timeout_s=0.05, cvm_connect_timeout_s=0.05, cvm_max_attempts=2)
    client = CvmClient(settings, transport=httpx.ASGITransport(app=hang), sleep=Sleeps())
    start = anyio.current_time()
    async with client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances_status(["ins-00000001"])
    assert info.value.code == "Network.Timeout"
    assert anyio.current_time() - start < 2.0
    assert client.stats == {("DescribeInstancesStatus", "Network.Timeout"): 2}


async def test_connect_error_is_wrapped_and_not_chained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    async with retry_client(Wire(handler), Sleeps(), cvm_max_attempts=2) as client:
        with pytest.raises(TransientError) as info:
            await client.run_instances(LAUNCH)
    error = info.value
    assert error.code == "Network.ConnectError"
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert "ConnectError" in error.message


async def test_connection_refused_on_a_real_socket_is_a_transient_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens on the port now
    settings = make_settings(cvm_endpoint=f"http://127.0.0.1:{port}", cvm_max_attempts=1)
    async with CvmClient(settings) as client:
        with pytest.raises(TransientError) as info:
            await client.describe_instances_status(["ins-00000001"])
    assert info.value.code == "Network.ConnectError"


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (httpx.Response(200, text="not json"), "Response.Malformed"),
        (httpx.Response(200, content=b"\xff\xfe"), "Response.Malformed"),
        (httpx.Response(200, json=["Response"]), "Response.Malformed"),
        (httpx.Response(200, json={"Nope": {}}), "Response.Malformed"),
        (httpx.Response(200, json={"Response": {"Error": {"Message": "x"}}}), "Response.Malformed"),
        (httpx.Response(200, json={"Response": {"InstanceIdSet": "ins-1"}}), "Response.Malformed"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "Http.502"),
        (httpx.Response(404, json={"Response": {"RequestId": "r"}}), "Http.404"),
    ],
)
async def test_garbage_answers_are_transient_and_retried(
    response: httpx.Response, code: str
) -> None:
    wire = Wire(lambda r: response)
    async with retry_client(wire, Sleeps(), cvm_max_attempts=2) as client:
        with pytest.raises(TransientError) as info:
            await client.run_instances(LAUNCH)
    assert info.value.code == code
    assert len(wire.requests) == 2


async def test_in_flight_calls_are_capped() -> None:
    inflight = 0
    peak = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal inflight, peak
        inflight += 1
        peak = max(peak, inflight)
        await anyio.sleep(0.01)
        inflight -= 1
        body = json.dumps({"Response": {"InstanceStatusSet": [], "RequestId": "r"}}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    settings = make_settings(max_inflight_calls=3)
    client = CvmClient(settings, transport=httpx.ASGITransport(app=app))
    async with client, anyio.create_task_group() as tg:
        for n in range(12):
            tg.start_soon(client.describe_instances_status, [f"ins-{n:08d}"])
    assert peak == 3


# -- secrets -------------------------------------------------------------------------------

SECRETS = (SECRET_KEY, SESSION_TOKEN, LAUNCH.user_data or "")


def _assert_clean(text: str) -> None:
    for secret in (*SECRETS, SECRET_ID):
        assert secret not in text


async def test_client_repr_and_str_hide_credentials() -> None:
    settings = make_settings(session_token=Secret(SESSION_TOKEN))
    async with CvmClient(settings) as client:
        _assert_clean(repr(client))
        _assert_clean(str(client))
        _assert_clean(repr(vars(client)))


async def test_echoed_secrets_and_user_data_are_scrubbed_from_error_messages() -> None:
    echo = f"bad key {SECRET_KEY} for {SECRET_ID} token {SESSION_TOKEN} data {LAUNCH.user_data}"
    wire = Wire(lambda r: api_error("InvalidParameterValue", echo))
    settings_overrides = {"session_token": Secret(SESSION_TOKEN)}
    async with client_for(wire, **settings_overrides) as client:
        with pytest.raises(CloudError) as info:
            await client.run_instances(LAUNCH)
    _assert_clean(str(info.value))
    _assert_clean(repr(info.value))
    _assert_clean(info.value.message)


async def test_network_errors_and_retry_logs_carry_no_secrets() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(
            f"peer closed ({request.headers['Authorization']})", request=request
        )

    with structlog.testing.capture_logs() as logs:
        async with retry_client(Wire(handler), Sleeps(), cvm_max_attempts=3) as client:
            with pytest.raises(TransientError) as info:
                await client.run_instances(LAUNCH)
    # The httpx message did embed the header; the request object itself stayed behind.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    assert [entry["event"] for entry in logs] == ["cvm_retry", "cvm_retry"]
    assert all(entry["code"] == "Network.Error" for entry in logs)
    _assert_clean(str(info.value))
    _assert_clean(repr(logs))
