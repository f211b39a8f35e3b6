"""The backoff book as tables: what each error class blocks, for how long, and when it ends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from controller.core.backoff import BackoffBook, backoff_delay
from controller.core.instances import Offering
from controller.errors import (
    AuthError,
    CapacityError,
    CloudError,
    InstanceNotFound,
    InvalidSpec,
    PriceTooLow,
    QuotaExceeded,
    Throttled,
    TransientError,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OFFER = Offering("ap-guangzhou-3", "S2.MEDIUM4")
ENV = "env-aaaaaaaa"


def book() -> BackoffBook:
    return BackoffBook(base_s=2.0, max_s=60.0, error_retry_s=300.0, rng=random.Random(1))


@pytest.mark.parametrize(
    ("error", "key", "kind", "heals"),
    [
        (
            CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m"),
            (None, OFFER),
            "capacity",
            True,
        ),
        (PriceTooLow("InvalidParameterValue.InsufficientPrice", "m"), (ENV, OFFER), "price", True),
        (QuotaExceeded("LimitExceeded.SpotQuota", "m"), (ENV, OFFER), "quota", False),
        (InvalidSpec("InvalidImageId.NotFound", "m"), (ENV, OFFER), "spec", False),
        (InstanceNotFound("InvalidInstanceId.NotFound", "m"), (ENV, OFFER), "unknown", False),
        (CloudError("SomethingNew", "m"), (ENV, OFFER), "unknown", False),
    ],
)
def test_a_failure_blocks_the_scope_its_class_names(
    error: CloudError, key: tuple[str | None, Offering], kind: str, heals: bool
) -> None:
    b = book()
    block = b.after_failure(ENV, OFFER, error, NOW)
    assert block is not None
    assert b.blocks == {key: block}
    assert b.holds == {}
    assert block.kind == kind
    assert block.reason == f"{error.code} in {OFFER}"
    delay = (block.until - NOW).total_seconds()
    if heals:  # equal jitter around the first step of 2 s
        assert 1.0 <= delay <= 2.0
    else:
        assert delay == 300.0


def test_credentials_refused_hold_the_whole_environment() -> None:
    b = book()
    first = b.after_failure(ENV, OFFER, AuthError("AuthFailure.SecretIdNotFound", "m"), NOW)
    again = b.after_failure(ENV, OFFER, AuthError("AuthFailure.SecretIdNotFound", "m"), NOW)
    assert b.blocks == {}
    assert first is not None
    assert again is not None
    assert b.holds[ENV] == again
    assert (again.kind, again.failures) == ("auth", 2)
    assert again.reason == "authentication failed: AuthFailure.SecretIdNotFound"
    assert again.until == NOW + timedelta(seconds=300)


@pytest.mark.parametrize(
    "error", [Throttled("RequestLimitExceeded", "m"), TransientError("InternalError", "m")]
)
def test_an_unknown_outcome_blocks_nothing(error: CloudError) -> None:
    b = book()
    assert b.after_failure(ENV, OFFER, error, NOW) is None
    assert (b.blocks, b.holds) == ({}, {})


def test_repeated_capacity_failures_back_off_exponentially_up_to_the_cap() -> None:
    b = book()
    error = CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m")
    delays = []
    for _ in range(8):
        block = b.after_failure(ENV, OFFER, error, NOW)
        assert block is not None
        delays.append((block.until - NOW).total_seconds())
    steps = [min(60.0, 2.0 * 2**i) for i in range(8)]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True))
    assert b.blocks[(None, OFFER)].failures == 8


def test_a_success_opens_the_offering_and_the_environment() -> None:
    b = book()
    b.after_failure(ENV, OFFER, CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m"), NOW)
    b.after_failure(ENV, OFFER, PriceTooLow("InvalidParameterValue.InsufficientPrice", "m"), NOW)
    b.hold_all([ENV], AuthError("AuthFailure", "m"), NOW)
    b.after_success(ENV, OFFER)
    assert (b.blocks, b.holds) == ({}, {})


def test_blocks_are_forgotten_an_hour_after_they_end() -> None:
    b = book()
    b.after_failure(ENV, OFFER, QuotaExceeded("LimitExceeded.SpotQuota", "m"), NOW)
    b.expire(NOW + timedelta(seconds=300 + 3599))
    assert b.blocks
    b.expire(NOW + timedelta(seconds=300 + 3601))
    assert b.blocks == {}


def test_ends_lists_every_block_and_hold() -> None:
    b = book()
    b.after_failure(ENV, OFFER, QuotaExceeded("LimitExceeded.SpotQuota", "m"), NOW)
    b.hold_all(["env-bbbbbbbb"], AuthError("AuthFailure", "m"), NOW)
    assert sorted(b.ends()) == [NOW + timedelta(seconds=300)] * 2


@pytest.mark.parametrize(
    ("failures", "step"), [(1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (30, 60.0)]
)
def test_backoff_delay_is_half_fixed_half_jitter(failures: int, step: float) -> None:
    rng = random.Random(7)
    for _ in range(50):
        assert step / 2 <= backoff_delay(failures, 2.0, 60.0, rng) <= step


@pytest.mark.parametrize(
    ("error", "failed_after_s", "seen_after_s", "lifted"),
    [
        (CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m"), 0, 10, True),
        # the market was asked before the latest failure: what it said is older
        (CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m"), 10, 5, False),
        (PriceTooLow("InvalidParameterValue.InsufficientPrice", "m"), 0, 10, False),
        (QuotaExceeded("LimitExceeded.SpotQuota", "m"), 0, 10, False),
    ],
)
def test_the_market_showing_stock_lifts_only_older_capacity_blocks(
    error: CloudError, failed_after_s: int, seen_after_s: int, lifted: bool
) -> None:
    b = BackoffBook(base_s=100.0, max_s=600.0, error_retry_s=300.0, rng=random.Random(1))
    b.after_failure(ENV, OFFER, error, NOW)
    failed = NOW + timedelta(seconds=failed_after_s)
    before = b.after_failure(ENV, OFFER, error, failed)
    assert before is not None
    seen = NOW + timedelta(seconds=seen_after_s)
    result = b.market_shows_stock(OFFER, seen)
    assert bool(result) is lifted
    after = next(iter(b.blocks.values()))
    if lifted:
        assert after.until == seen
        assert not after.active(seen)
        assert after.failures == before.failures == 2  # the series goes on
        again = b.after_failure(ENV, OFFER, error, seen)
        assert again is not None
        assert again.failures == 3
    else:
        assert after == before


def test_the_market_lifts_nothing_for_another_offering_or_an_ended_block() -> None:
    b = book()
    b.after_failure(ENV, OFFER, CapacityError("ResourcesSoldOut.SpecifiedInstanceType", "m"), NOW)
    other = Offering("ap-guangzhou-4", "S2.MEDIUM4")
    assert b.market_shows_stock(other, NOW + timedelta(seconds=1)) == []
    assert b.market_shows_stock(OFFER, NOW + timedelta(hours=1)) == []  # already ended
