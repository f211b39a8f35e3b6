"""The async CVM API 3.0 client: the only code that speaks HTTP to Tencent Cloud.

Everything the reconcile daemon needs from CVM is one intent-named method here, taking and
returning the typed values of :mod:`controller.core.instances`. The wire follows the official SDK
(``tencentcloud/common/abstract_client.py``): a JSON POST to ``/`` with the ``X-TC-*`` headers and
a TC3 signature over the exact body bytes sent, the ``Host`` being the endpoint's host[:port].

Failures leave this module only as :mod:`controller.errors` classes, classified once in
:mod:`controller.cloud.classify`; httpx exceptions are wrapped where they occur and never chained
(they hold the request, and so its ``Authorization`` header). The client itself retries only
server faults and throttling, with capped exponential backoff and full jitter, re-signing each
attempt. A launch is retried with the very same body, so the same ``ClientToken``: Tencent then
answers with the instances of the first attempt instead of launching twice, which is what makes a
timeout after the side effect safe.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from random import Random
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx
import structlog

from controller.cloud import signing
from controller.cloud.classify import (
    HTTP_PREFIX,
    NETWORK_CONNECT_ERROR,
    NETWORK_ERROR,
    NETWORK_TIMEOUT,
    RESPONSE_MALFORMED,
    RESPONSE_PAGING_RUNAWAY,
    InstanceIdsNotFound,
    classify,
)
from controller.cloud.ratelimit import RateLimiter
from controller.core.events import Event
from controller.core.instances import Instance, LaunchRequest, LaunchResult, PoolOffering
from controller.errors import CloudError, ValidationFailed
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings

__all__ = ["API_VERSION", "SERVICE", "CvmClient"]

SERVICE: Final = "cvm"
API_VERSION: Final = "2017-03-12"
CONTENT_TYPE: Final = "application/json"
#: Tencent's cap on ids per call and on ``Limit``.
BATCH: Final = 100
#: 200,000 instances: twice the largest fleet the controller is benchmarked with (10,000
#: environments, 100,000 instances), so hitting it means the API is paging in circles. (It
#: was 500 pages, 50,000 instances: a 100,000-instance sweep failed as PagingRunaway.)
MAX_PAGES: Final = 2_000
#: Pages of one listing in flight at once, once TotalCount is known to be trustworthy: enough
#: to reach DescribeInstances' 40 calls/s at ~200 ms a call, few of MAX_INFLIGHT_CALLS.
CONCURRENT_PAGES: Final = 8
_REQUEST_CLIENT: Final = "spot-controller"

_log = structlog.get_logger(__name__)

T = TypeVar("T")
JsonObject = dict[str, Any]


class _Malformed(Exception):
    """A success envelope whose fields are not what the API documents; never leaves the module."""


class CvmClient:
    """Async client of the CVM actions the controller uses.

    ``transport`` replaces the network (``httpx.ASGITransport`` for the in-process simulator,
    ``httpx.MockTransport`` for wire-shape tests). ``rate_limiter`` should be the process-wide
    one; a client without one builds its own from ``settings.rate_limits``. ``sleep`` and
    ``random`` drive the retry backoff, ``wall_clock`` the signature timestamps, so tests can
    pin them.

    With no credentials configured (both SecretId and SecretKey empty) the client signs with the
    simulator's documented credentials, which Tencent never accepts: a misconfigured production
    daemon fails with :class:`controller.errors.AuthError` rather than sending nothing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        parts = urlsplit(settings.cvm_endpoint)
        # host[:port] exactly as written, as the SDK puts its endpoint in Host and the signature.
        self._host = parts.netloc.rpartition("@")[2]
        self._url = f"{parts.scheme}://{self._host}/"
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.cvm_timeout_s, connect=settings.cvm_connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_inflight_calls,
                max_keepalive_connections=settings.max_inflight_calls,
            ),
            follow_redirects=False,
        )
        self._limiter = rate_limiter or RateLimiter.from_settings(settings)
        self._inflight = anyio.CapacityLimiter(settings.max_inflight_calls)
        self._sleep = sleep
        self._random = random or Random()
        self._wall_clock = wall_clock
        # httpx does not enforce its timeouts on every transport (ASGITransport ignores them).
        self._deadline_s = settings.cvm_timeout_s + settings.cvm_connect_timeout_s
        self._stats: Counter[tuple[str, str]] = Counter()

    def __repr__(self) -> str:
        return f"CvmClient(endpoint={self._url!r}, region={self._settings.region!r})"

    async def __aenter__(self) -> CvmClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def stats(self) -> Mapping[tuple[str, str], int]:
        """Outcome of every HTTP attempt: (action, error code or ``"OK"``) -> count.

        Attempts, not calls: a launch that was throttled once and then succeeded counts one
        ``RequestLimitExceeded`` and one ``OK``, which is what a rate-limit dashboard needs.
        """
        return MappingProxyType(dict(self._stats))

    # -- actions ---------------------------------------------------------------------------

    async def run_instances(self, request: LaunchRequest) -> LaunchResult:
        """Bid for ``request.count`` one-time spot instances; returns the accepted ids.

        Accepted is not running: the instances start ``PENDING``. Capacity and price failures
        come back at once (a spot bid is one-shot) as :class:`CapacityError` /
        :class:`PriceTooLow`; they are never retried here.
        """
        if request.count > self._settings.launch_batch_max:
            raise ValidationFailed(
                "count", f"at most {self._settings.launch_batch_max} instances per launch"
            )
        return await self._call(
            "RunInstances",
            _run_instances_params(request),
            _parse_launch,
            user_data=request.user_data,
        )

    async def describe_instances(
        self,
        *,
        instance_ids: Sequence[str] | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Instance]:
        """Instances by id (unknown ids are simply absent) or by filters (all pages).

        Tencent cannot combine ids with filters. With neither, every instance of the region is
        listed. Filter names are Tencent's (``zone``, ``instance-state``, ``tag:<key>``, ...).
        """
        if instance_ids is not None and filters is not None:
            raise ValueError("describe_instances takes instance_ids or filters, not both")
        if instance_ids is not None:
            pages = await self._by_ids("DescribeInstances", instance_ids, _parse_instances_page)
            return [instance for _, page in pages for instance in page]
        return await self._describe_all(_filters_param(filters or {}))

    async def describe_instances_status(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """id -> ``InstanceState`` for the ids that exist (unknown ids are simply absent).

        The cheap way to ask whether instances still exist: a small answer, and a rate limit of
        its own (40/s), apart from DescribeInstances'. Chunks of 100 ids go concurrently.
        """
        pages = await self._by_ids("DescribeInstancesStatus", instance_ids, _parse_status)
        return {iid: state for page in pages for iid, state in page.items()}

    async def _by_ids(
        self, action: str, instance_ids: Sequence[str], parse: Callable[[JsonObject], T]
    ) -> list[T]:
        """One ``action`` per 100 ids, sent concurrently; the parsed pages in order."""
        chunks = _chunks(_unique(instance_ids, "instance_ids"), BATCH)
        return await self._concurrently(
            [
                functools.partial(
                    self._call, action, {"InstanceIds": chunk, "Offset": 0, "Limit": BATCH}, parse
                )
                for chunk in chunks
            ]
        )

    async def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        """Terminate the instances, 100 per call.

        Termination is idempotent in intent: ids Tencent reports as ``InvalidInstanceId.NotFound``
        are already gone, so they are dropped and the rest of the batch is sent again. Raises
        :class:`controller.errors.InstanceNotFound` only when the error names none of the ids.
        Instances still ``PENDING`` are refused (:class:`OperationRejected`): try again later.
        """
        for chunk in _chunks(_unique(instance_ids, "instance_ids"), BATCH):
            remaining = chunk
            while remaining:
                try:
                    await self._call(
                        "TerminateInstances", {"InstanceIds": remaining}, _parse_nothing
                    )
                    break
                except InstanceIdsNotFound as error:
                    gone = set(error.instance_ids) & set(remaining)
                    if not gone:
                        raise
                    _log.info(
                        Event.CVM_TERMINATE_ALREADY_GONE,
                        instance_ids=sorted(gone),
                        request_id=error.request_id,
                    )
                    remaining = [i for i in remaining if i not in gone]

    async def describe_zone_instance_config_infos(
        self, *, zone: str | None = None, instance_type: str | None = None
    ) -> list[PoolOffering]:
        """Spot pools (status, stock grade, price) of the region, optionally narrowed."""
        filters: dict[str, Sequence[str]] = {"instance-charge-type": ["SPOTPAID"]}
        if zone is not None:
            filters["zone"] = [zone]
        if instance_type is not None:
            filters["instance-type"] = [instance_type]
        return await self._call(
            "DescribeZoneInstanceConfigInfos",
            {"Filters": _filters_param(filters)},
            _parse_offerings,
        )

    async def inquiry_price_run_instances(self, request: LaunchRequest) -> float:
        """Hourly spot price of one instance of ``request`` (the discounted price if given).

        Priced for a single instance whatever ``request.count`` says: this is a unit price.
        """
        return await self._call(
            "InquiryPriceRunInstances", _inquiry_price_params(request), _parse_inquiry_price
        )

    # -- paging ----------------------------------------------------------------------------

    async def _describe_all(self, filters: list[JsonObject]) -> list[Instance]:
        """Page ``Limit=100`` until ``TotalCount``, a short page, or the page cap.

        Instances launched or removed between pages shift the offsets, so ids are de-duplicated;
        a page that brings nothing new, or too many pages, means the API is not converging and
        raises instead of looping (a truncated list must never look like "these are gone").
        The first two pages are read one after the other; once the second confirms the
        TotalCount of the first (full, and new), the rest is read ``CONCURRENT_PAGES`` at a
        time under the rate limiter: 10,000 instances in 100 pages take the 1.5 s the
        40 calls/s allow, not 100 round trips.
        """
        seen: dict[str, Instance] = {}
        offset = 0
        total = 0
        for page_number in range(MAX_PAGES):
            total, page = await self._describe_page(filters, offset)
            fresh = [i for i in page if i.instance_id not in seen]
            for instance in fresh:
                seen[instance.instance_id] = instance
            offset += len(page)
            if not page or len(page) < BATCH or offset >= total:
                return list(seen.values())
            if not fresh:
                break
            if page_number == 1:
                offset, total = await self._describe_rest(filters, offset, total, seen)
                if offset >= total:
                    return list(seen.values())
        raise classify(
            RESPONSE_PAGING_RUNAWAY,
            f"DescribeInstances paging did not converge (TotalCount {total}, offset {offset})",
            action="DescribeInstances",
        )

    async def _describe_page(
        self, filters: list[JsonObject], offset: int
    ) -> tuple[int, list[Instance]]:
        params: JsonObject = {"Offset": offset, "Limit": BATCH}
        if filters:
            params = {"Filters": filters, **params}
        return await self._call("DescribeInstances", params, _parse_instances_page)

    async def _describe_rest(
        self, filters: list[JsonObject], offset: int, total: int, seen: dict[str, Instance]
    ) -> tuple[int, int]:
        """Pages from ``offset`` to ``total`` concurrently; returns (next offset, TotalCount).

        Pages are merged in offset order, so the result is the one sequential paging gives.
        A short or empty page ends the listing there; a TotalCount that grew meanwhile is
        paged on by the caller.
        """
        offsets = list(range(offset, total, BATCH))
        if len(offsets) > MAX_PAGES:
            raise classify(
                RESPONSE_PAGING_RUNAWAY,
                f"DescribeInstances TotalCount {total} needs more than {MAX_PAGES} pages",
                action="DescribeInstances",
            )
        pages = await self._concurrently(
            [functools.partial(self._describe_page, filters, at) for at in offsets]
        )
        for at, (page_total, page) in zip(offsets, pages, strict=True):
            total = max(total, page_total)
            fresh = [i for i in page if i.instance_id not in seen]
            for instance in fresh:
                seen[instance.instance_id] = instance
            offset = at + len(page)
            if len(page) == BATCH and not fresh:
                raise classify(
                    RESPONSE_PAGING_RUNAWAY,
                    f"DescribeInstances page at offset {at} repeats earlier pages",
                    action="DescribeInstances",
                )
            if len(page) < BATCH:
                return offset, offset  # the end of the listing
        return offset, total

    async def _concurrently(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run ``calls`` ``CONCURRENT_PAGES`` at a time; their results in order.

        The first CloudError cancels the rest and is raised as itself (not in a group).
        """
        results: dict[int, T] = {}
        failures: list[CloudError] = []
        slots = anyio.CapacityLimiter(CONCURRENT_PAGES)

        async def run(
            index: int, call: Callable[[], Awaitable[T]], scope: anyio.CancelScope
        ) -> None:
            async with slots:
                try:
                    results[index] = await call()
                except CloudError as error:
                    failures.append(error)
                    scope.cancel()

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run, index, call, group.cancel_scope)
        if failures:
            raise failures[0]
        return [results[index] for index in range(len(calls))]

    # -- one call, with retries ------------------------------------------------------------

    async def _call(
        self,
        action: str,
        params: JsonObject,
        parse: Callable[[JsonObject], T],
        *,
        user_data: str | None = None,
    ) -> T:
        """Send ``action`` until it succeeds, fails for good, or runs out of attempts.

        The body is serialised once, so every attempt of a launch carries the same bytes (and
        ClientToken); only the timestamp and signature change.
        """
        body = json.dumps(params).encode("ascii")
        attempt = 0
        while True:
            try:
                result = await self._attempt(action, body, parse, user_data)
            except CloudError as error:
                self._stats[(action, error.code)] += 1
                attempt += 1
                if not error.client_retries or attempt >= self._settings.cvm_max_attempts:
                    raise
                delay = self.backoff_s(attempt - 1)
                _log.info(
                    Event.CVM_RETRY,
                    action=action,
                    code=error.code,
                    request_id=error.request_id,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)
            else:
                self._stats[(action, "OK")] += 1
                return result

    def backoff_s(self, retry: int) -> float:
        """Full-jitter backoff before retry number ``retry`` (0-based).

        ``uniform(0, min(max, base * 2**retry))``: spreading retries over the whole window keeps
        many clients throttled at once from retrying in lockstep.
        """
        base = self._settings.cvm_retry_base_s
        cap = min(self._settings.cvm_retry_max_s, base * 2.0 ** min(retry, 62))
        return self._random.uniform(0.0, cap)

    async def _attempt(
        self,
        action: str,
        body: bytes,
        parse: Callable[[JsonObject], T],
        user_data: str | None,
    ) -> T:
        async with self._inflight:
            await self._limiter.acquire(action)
            headers = self._signed_headers(action, body)
            try:
                with anyio.fail_after(self._deadline_s):
                    response = await self._http.post(self._url, content=body, headers=headers)
            except TimeoutError:
                raise self._fault(
                    NETWORK_TIMEOUT, "no answer within the deadline", action
                ) from None
            except httpx.TimeoutException as exc:
                raise self._fault(NETWORK_TIMEOUT, type(exc).__name__, action) from None
            except httpx.ConnectError as exc:
                message = self._scrub(_describe(exc), user_data)
                raise self._fault(NETWORK_CONNECT_ERROR, message, action) from None
            except httpx.HTTPError as exc:
                message = self._scrub(_describe(exc), user_data)
                raise self._fault(NETWORK_ERROR, message, action) from None
        return self._read(action, response, parse, user_data)

    def _fault(self, code: str, message: str, action: str) -> CloudError:
        return classify(code, message, action=action)

    def _signed_headers(self, action: str, body: bytes) -> dict[str, str]:
        """Headers as the SDK sends them, signed over ``body`` with a fresh timestamp."""
        timestamp = int(self._wall_clock())
        secret_id, secret_key = self._settings.secret_id, self._settings.secret_key
        if not secret_id and not secret_key:
            id_value, key_value = SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
        else:
            id_value, key_value = secret_id.reveal(), secret_key.reveal()
        headers = {
            "Host": self._host,
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": action,
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-RequestClient": _REQUEST_CLIENT,
        }
        if self._settings.region:
            headers["X-TC-Region"] = self._settings.region
        if self._settings.session_token:
            headers["X-TC-Token"] = self._settings.session_token.reveal()
        headers["Authorization"] = signing.authorization(
            id_value,
            key_value,
            host=self._host,
            content_type=CONTENT_TYPE,
            body=body,
            timestamp=timestamp,
            service=SERVICE,
        )
        return headers

    def _read(
        self,
        action: str,
        response: httpx.Response,
        parse: Callable[[JsonObject], T],
        user_data: str | None,
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
            text = self._scrub(message if isinstance(message, str) else "", user_data)
            raise classify(code, text, request_id=request_id, action=action)
        try:
            return parse(inner)
        except _Malformed as exc:
            raise classify(
                RESPONSE_MALFORMED, str(exc), request_id=request_id, action=action
            ) from None

    def _scrub(self, message: str, user_data: str | None) -> str:
        """Remove credentials and user data an error message might echo back."""
        secrets = [
            self._settings.secret_id,
            self._settings.secret_key,
            self._settings.session_token,
        ]
        for value in [s.reveal() for s in secrets if s] + ([user_data] if user_data else []):
            message = message.replace(value, "***")
        return message


# -- request bodies (field order as the SDK serialises its models) -----------------------------


def _spot_market_options(request: LaunchRequest) -> JsonObject:
    return {
        "SpotOptions": {"MaxPrice": request.max_price, "SpotInstanceType": "one-time"},
        "MarketType": "spot",
    }


def _placement(request: LaunchRequest) -> JsonObject:
    placement: JsonObject = {"Zone": request.zone}
    if request.project_id is not None:
        placement["ProjectId"] = request.project_id
    return placement


def _tag_specification(request: LaunchRequest) -> list[JsonObject]:
    tags = [{"Key": key, "Value": value} for key, value in request.tags.items()]
    return [{"ResourceType": "instance", "Tags": tags}]


def _optional_launch_fields(request: LaunchRequest) -> Iterator[tuple[str, Any]]:
    """VirtualPrivateCloud ... SecurityGroupIds, shared by RunInstances and its price inquiry."""
    if request.vpc_id is not None:
        yield "VirtualPrivateCloud", {"VpcId": request.vpc_id, "SubnetId": request.subnet_id}
    yield "InstanceCount", request.count
    if request.instance_name is not None:
        yield "InstanceName", request.instance_name
    if request.key_ids:
        yield "LoginSettings", {"KeyIds": list(request.key_ids)}
    if request.security_group_ids:
        yield "SecurityGroupIds", list(request.security_group_ids)


def _run_instances_params(request: LaunchRequest) -> JsonObject:
    params: JsonObject = {
        "InstanceChargeType": "SPOTPAID",
        "Placement": _placement(request),
        "InstanceType": request.instance_type,
        "ImageId": request.image_id,
    }
    params.update(_optional_launch_fields(request))
    params["ClientToken"] = request.client_token
    if request.tags:
        params["TagSpecification"] = _tag_specification(request)
    params["InstanceMarketOptions"] = _spot_market_options(request)
    if request.user_data is not None:
        params["UserData"] = request.user_data
    return params


def _inquiry_price_params(request: LaunchRequest) -> JsonObject:
    """The launch's shape for ONE instance, without ClientToken and UserData.

    One instance, because the answer is then the unit price whether or not Tencent multiplies
    its prices by InstanceCount (the docs do not say; the simulator does).
    """
    params: JsonObject = {
        "Placement": _placement(request),
        "ImageId": request.image_id,
        "InstanceChargeType": "SPOTPAID",
        "InstanceType": request.instance_type,
    }
    params.update(_optional_launch_fields(request))
    params["InstanceCount"] = 1
    if request.tags:
        params["TagSpecification"] = _tag_specification(request)
    params["InstanceMarketOptions"] = _spot_market_options(request)
    return params


def _filters_param(filters: Mapping[str, Sequence[str]]) -> list[JsonObject]:
    result = []
    for name, values in filters.items():
        if isinstance(values, str):
            raise TypeError(f"filter {name!r}: values must be a sequence of strings, not a str")
        result.append({"Name": name, "Values": list(values)})
    return result


def _unique(ids: Sequence[str], name: str) -> list[str]:
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a sequence of ids, not a str")
    return list(dict.fromkeys(ids))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _describe(exc: httpx.HTTPError) -> str:
    """Class and text of an httpx error; its request (and Authorization header) stay behind."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# -- response parsing ------------------------------------------------------------------------


def _field(obj: Mapping[str, Any], key: str, kind: type[T], *, required: bool = False) -> T | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _Malformed(f"{key} is missing")
        return None
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # type: ignore[return-value]
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise _Malformed(f"{key} is a {type(value).__name__}, expected {kind.__name__}")
    return value


def _required(obj: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = _field(obj, key, kind, required=True)
    assert value is not None
    return value


def _objects(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = _field(obj, key, list) or []
    if not all(isinstance(item, dict) for item in items):
        raise _Malformed(f"{key} holds a non-object")
    return items


def _strings(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    items = _field(obj, key, list) or []
    if not all(isinstance(item, str) for item in items):
        raise _Malformed(f"{key} holds a non-string")
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


def _parse_launch(response: JsonObject) -> LaunchResult:
    return LaunchResult(
        instance_ids=_strings(response, "InstanceIdSet"),
        request_id=_field(response, "RequestId", str) or "",
    )


def _parse_instance(item: Mapping[str, Any]) -> Instance:
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


def _parse_instances_page(response: JsonObject) -> tuple[int, list[Instance]]:
    instances = [_parse_instance(item) for item in _objects(response, "InstanceSet")]
    total = _field(response, "TotalCount", int)
    return (len(instances) if total is None else total), instances


def _parse_status(response: JsonObject) -> dict[str, str]:
    return {
        _required(item, "InstanceId", str): _field(item, "InstanceState", str) or ""
        for item in _objects(response, "InstanceStatusSet")
    }


def _parse_nothing(response: JsonObject) -> None:
    return None


def _price(price: Mapping[str, Any]) -> float | None:
    """The spot price of an ``ItemPrice``: the discounted one when Tencent gives it."""
    discounted = _field(price, "UnitPriceDiscount", float)
    return discounted if discounted is not None else _field(price, "UnitPrice", float)


def _parse_offerings(response: JsonObject) -> list[PoolOffering]:
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
            )
        )
    return offerings


def _parse_inquiry_price(response: JsonObject) -> float:
    price = _field(response, "Price", dict) or {}
    instance_price = _field(price, "InstancePrice", dict)
    value = None if instance_price is None else _price(instance_price)
    if value is None or not math.isfinite(value):
        raise _Malformed("Price.InstancePrice has no unit price")
    return value
