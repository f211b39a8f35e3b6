"""Capped exponential backoff with jitter, per offering. Pure: time and randomness come in."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from controller.core.instances import Offering
from controller.errors import Blocks, CloudError


def backoff_delay(failures: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Delay after ``failures`` consecutive failures (>= 1): exponential, capped, jittered.

    "Equal jitter": half the step is fixed so a pool is never retried at once, half is random so
    environments that failed together do not retry in lockstep.
    """
    step: float = min(max_s, base_s * 2.0 ** max(0, failures - 1))
    jitter: float = rng.uniform(0, step / 2)
    return step / 2 + jitter


@dataclass(frozen=True)
class Block:
    """A pool (or an environment) that must not be tried before ``until``."""

    until: datetime
    kind: str  # "capacity" | "price" | "quota" | "spec" | "auth"
    reason: str
    failures: int = 1
    since: datetime | None = None  # the first failure of this unbroken series
    failed_at: datetime | None = None  # the latest failure

    @property
    def is_error(self) -> bool:
        """Errors need a human (quota, spec, credentials); capacity and price heal by themselves."""
        return self.kind in ("quota", "spec", "auth")

    def active(self, now: datetime) -> bool:
        return now < self.until


def next_block(
    previous: Block | None,
    *,
    kind: str,
    reason: str,
    now: datetime,
    base_s: float,
    max_s: float,
    rng: random.Random,
) -> Block:
    failures = (previous.failures + 1) if previous is not None else 1
    delay = backoff_delay(failures, base_s, max_s, rng)
    since = (previous.since or now) if previous is not None else now
    return Block(
        until=now + timedelta(seconds=delay),
        kind=kind,
        reason=reason,
        failures=failures,
        since=since,
        failed_at=now,
    )


class BackoffBook:
    """Which offerings and environments must not be tried yet, and why.

    The only writer of the blocks the planner reads. An error's class says what it blocks
    (:class:`~controller.errors.Blocks`) and whether it heals by itself: capacity and price
    back off exponentially, errors that need a human wait ``error_retry_s``.
    """

    def __init__(
        self, *, base_s: float, max_s: float, error_retry_s: float, rng: random.Random
    ) -> None:
        self.base_s, self.max_s, self.error_retry_s, self.rng = base_s, max_s, error_retry_s, rng
        # (env id, or None for every environment; offering) -> block
        self.blocks: dict[tuple[str | None, Offering], Block] = {}
        self.holds: dict[str, Block] = {}  # env id -> a block on the whole environment

    def after_failure(
        self, env_id: str, offering: Offering, error: CloudError, now: datetime
    ) -> Block | None:
        """Record a launch's failure; the block it set, or None when it blocks nothing."""
        if error.blocks is Blocks.NOTHING:
            return None
        if error.blocks is Blocks.ENVIRONMENT:
            previous = self.holds.get(env_id)
            hold = Block(
                now + timedelta(seconds=self.error_retry_s),
                error.kind,
                f"authentication failed: {error.code}",
                (previous.failures + 1) if previous else 1,
            )
            self.holds[env_id] = hold
            return hold
        key = (None if error.blocks is Blocks.OFFERING else env_id, offering)
        reason = f"{error.code} in {offering}"
        if error.heals:
            block = next_block(
                self.blocks.get(key),
                kind=error.kind,
                reason=reason,
                now=now,
                base_s=self.base_s,
                max_s=self.max_s,
                rng=self.rng,
            )
        else:
            previous_block = self.blocks.get(key)
            since = (previous_block.since or now) if previous_block is not None else now
            block = Block(
                now + timedelta(seconds=self.error_retry_s),
                error.kind,
                reason,
                since=since,
                failed_at=now,
            )
        self.blocks[key] = block
        return block

    def after_success(self, env_id: str, offering: Offering) -> None:
        """A launch went through: its offering and its environment are open again."""
        self.blocks.pop((None, offering), None)
        self.blocks.pop((env_id, offering), None)
        self.holds.pop(env_id, None)

    def market_shows_stock(self, offering: Offering, seen_at: datetime) -> list[Block]:
        """The market, asked at ``seen_at``, sells ``offering`` again: its capacity blocks that
        failed before then end now (the blocks that were lifted). The failure count stays, so
        a market that says "in stock" while launches keep failing earns one try per look."""
        lifted = []
        for key, block in list(self.blocks.items()):
            if key[1] != offering or block.kind != "capacity" or not block.active(seen_at):
                continue
            if block.failed_at is None or block.failed_at >= seen_at:
                continue  # a failure newer than what the market said
            self.blocks[key] = replace(block, until=seen_at)
            lifted.append(block)
        return lifted

    def hold_all(self, env_ids: Iterable[str], error: CloudError, now: datetime) -> None:
        """The credentials were refused while observing: no environment may launch."""
        for env_id in env_ids:
            self.holds[env_id] = Block(
                now + timedelta(seconds=self.error_retry_s),
                error.kind,
                f"authentication failed: {error.code}",
            )

    def expire(self, now: datetime) -> None:
        """Forget blocks an hour past their end (a failure count that old means nothing)."""
        stale = now - timedelta(hours=1)
        self.blocks = {k: b for k, b in self.blocks.items() if b.active(now) or b.until > stale}

    def ends(self) -> list[datetime]:
        """When each block and hold ends: a plan may change then."""
        return [b.until for b in self.blocks.values()] + [h.until for h in self.holds.values()]
