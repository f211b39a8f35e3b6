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

import functools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from random import Random
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx
import structlog

from controller.cloud import paging, signing
from controller.cloud.classify import (
    NETWORK_CONNECT_ERROR,
    NETWORK_ERROR,
    NETWORK_TIMEOUT,
    InstanceIdsNotFound,
    classify,
)
from controller.cloud.ratelimit import RateLimiter
from controller.cloud.requests import (
    chunks,
    filters_param,
    inquiry_price_params,
    run_instances_params,
    unique,
)
from controller.cloud.responses import (
    describe_http_error,
    parse_inquiry_price,
    parse_instances_page,
    parse_launch,
    parse_nothing,
    parse_offerings,
    parse_status,
    read_envelope,
)
from controller.core.events import Event
from controller.core.instances import SPOT, Instance, LaunchRequest, LaunchResult, PoolOffering
from controller.errors import CloudError, ValidationFailed
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY, Settings

__all__ = ["API_VERSION", "SERVICE", "CvmClient"]

SERVICE: Final = "cvm"
API_VERSION: Final = "2017-03-12"
CONTENT_TYPE: Final = "application/json"
#: Tencent's cap on ids per call and on ``Limit``.
BATCH: Final = 100
_REQUEST_CLIENT: Final = "spot-controller"

_log = structlog.get_logger(__name__)

T = TypeVar("T")
JsonObject = dict[str, Any]


def _as_is(response: JsonObject) -> JsonObject:
    return response


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
            run_instances_params(request),
            parse_launch,
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
            pages = await self._by_ids("DescribeInstances", instance_ids, parse_instances_page)
            return [instance for _, page in pages for instance in page]
        return await self._describe_all(filters_param(filters or {}))

    async def describe_instances_status(self, instance_ids: Sequence[str]) -> dict[str, str]:
        """id -> ``InstanceState`` for the ids that exist (unknown ids are simply absent).

        The cheap way to ask whether instances still exist: a small answer, and a rate limit of
        its own (40/s), apart from DescribeInstances'. Chunks of 100 ids go concurrently.
        """
        pages = await self._by_ids("DescribeInstancesStatus", instance_ids, parse_status)
        return {iid: state for page in pages for iid, state in page.items()}

    async def _by_ids(
        self, action: str, instance_ids: Sequence[str], parse: Callable[[JsonObject], T]
    ) -> list[T]:
        """One ``action`` per 100 ids, sent concurrently; the parsed pages in order."""
        batches = chunks(unique(instance_ids, "instance_ids"), BATCH)
        return await paging.concurrently(
            [
                functools.partial(
                    self._call, action, {"InstanceIds": chunk, "Offset": 0, "Limit": BATCH}, parse
                )
                for chunk in batches
            ]
        )

    async def terminate_instances(self, instance_ids: Sequence[str]) -> None:
        """Terminate the instances, 100 per call.

        Termination is idempotent in intent: ids Tencent reports as ``InvalidInstanceId.NotFound``
        are already gone, so they are dropped and the rest of the batch is sent again. Raises
        :class:`controller.errors.InstanceNotFound` only when the error names none of the ids.
        Instances still ``PENDING`` are refused (:class:`OperationRejected`): try again later.
        """
        for chunk in chunks(unique(instance_ids, "instance_ids"), BATCH):
            remaining = chunk
            while remaining:
                try:
                    await self._call(
                        "TerminateInstances", {"InstanceIds": remaining}, parse_nothing
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
        self,
        *,
        zone: str | None = None,
        instance_type: str | None = None,
        charge_type: str = SPOT,
    ) -> list[PoolOffering]:
        """Pools (status, stock grade, price) of one charge type (spot unless asked), narrowed."""
        filters: dict[str, Sequence[str]] = {"instance-charge-type": [charge_type]}
        if zone is not None:
            filters["zone"] = [zone]
        if instance_type is not None:
            filters["instance-type"] = [instance_type]
        return await self._call(
            "DescribeZoneInstanceConfigInfos",
            {"Filters": filters_param(filters)},
            parse_offerings,
        )

    async def inquiry_price_run_instances(self, request: LaunchRequest) -> float:
        """Hourly spot price of one instance of ``request`` (the discounted price if given).

        Priced for a single instance whatever ``request.count`` says: this is a unit price.
        """
        return await self._call(
            "InquiryPriceRunInstances", inquiry_price_params(request), parse_inquiry_price
        )

    # The BatchCompute API's instance-type catalog: CVM's answers passed on as they came.

    async def zone_instance_config_infos(self, filters: list[JsonObject]) -> JsonObject:
        return await self._call("DescribeZoneInstanceConfigInfos", {"Filters": filters}, _as_is)

    async def instance_type_configs(self, filters: list[JsonObject]) -> JsonObject:
        params: JsonObject = {"Filters": filters} if filters else {}
        return await self._call("DescribeInstanceTypeConfigs", params, _as_is)

    # -- paging ----------------------------------------------------------------------------

    async def _describe_all(self, filters: list[JsonObject]) -> list[Instance]:
        return await paging.describe_all(functools.partial(self._describe_page, filters))

    async def _describe_page(
        self, filters: list[JsonObject], offset: int
    ) -> tuple[int, list[Instance]]:
        params: JsonObject = {"Offset": offset, "Limit": BATCH}
        if filters:
            params = {"Filters": filters, **params}
        return await self._call("DescribeInstances", params, parse_instances_page)

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
                message = self._scrub(describe_http_error(exc), user_data)
                raise self._fault(NETWORK_CONNECT_ERROR, message, action) from None
            except httpx.HTTPError as exc:
                message = self._scrub(describe_http_error(exc), user_data)
                raise self._fault(NETWORK_ERROR, message, action) from None
        return read_envelope(action, response, parse, lambda text: self._scrub(text, user_data))

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

    def _scrub(self, message: str, user_data: str | None) -> str:
        """Remove credentials and user data an error message might echo back."""
        s = self._settings
        secrets = [x.reveal() for x in (s.secret_id, s.secret_key, s.session_token) if x]
        for value in secrets + ([user_data] if user_data else []):
            message = message.replace(value, "***")
        return message
