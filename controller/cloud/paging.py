"""Listing every instance of a filter: ``DescribeInstances`` paged to the end, safely.

Offsets shift while a list that changes is read, so pages are de-duplicated and a listing
that does not converge raises instead of returning a truncated list that would look like
"these instances are gone".
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import anyio

from controller.cloud.classify import RESPONSE_PAGING_RUNAWAY, classify
from controller.core.instances import Instance
from controller.errors import CloudError

T = TypeVar("T")
#: One page of a listing at an offset: (TotalCount, the page's instances).
Page = Callable[[int], Awaitable[tuple[int, list[Instance]]]]

#: Tencent's cap on ``Limit``.
BATCH: Final = 100
#: 200,000 instances: twice the largest fleet the controller is benchmarked with (10,000
#: environments, 100,000 instances), so hitting it means the API is paging in circles. (It
#: was 500 pages, 50,000 instances: a 100,000-instance sweep failed as PagingRunaway.)
MAX_PAGES: Final = 2_000
#: Pages of one listing in flight at once, once TotalCount is known to be trustworthy: enough
#: to reach DescribeInstances' 40 calls/s at ~200 ms a call, few of MAX_INFLIGHT_CALLS.
CONCURRENT_PAGES: Final = 8


async def describe_all(read_page: Page) -> list[Instance]:
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
        total, page = await read_page(offset)
        fresh = [i for i in page if i.instance_id not in seen]
        for instance in fresh:
            seen[instance.instance_id] = instance
        offset += len(page)
        if not page or len(page) < BATCH or offset >= total:
            return list(seen.values())
        if not fresh:
            break
        if page_number == 1:
            offset, total = await _describe_rest(read_page, offset, total, seen)
            if offset >= total:
                return list(seen.values())
    raise classify(
        RESPONSE_PAGING_RUNAWAY,
        f"DescribeInstances paging did not converge (TotalCount {total}, offset {offset})",
        action="DescribeInstances",
    )


async def _describe_rest(
    read_page: Page, offset: int, total: int, seen: dict[str, Instance]
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
    pages = await concurrently([functools.partial(read_page, at) for at in offsets])
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


async def concurrently(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` ``CONCURRENT_PAGES`` at a time; their results in order.

    The first CloudError cancels the rest and is raised as itself (not in a group).
    """
    results: dict[int, T] = {}
    failures: list[CloudError] = []
    slots = anyio.CapacityLimiter(CONCURRENT_PAGES)

    async def run(index: int, call: Callable[[], Awaitable[T]], scope: anyio.CancelScope) -> None:
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
