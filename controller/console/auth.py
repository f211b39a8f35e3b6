"""Who may use the console: credentials, sessions and CSRF tokens.

A :class:`Principal` is what a request acts as; a credential source turns a secret into one.
Today the only source is the console's password hashes (full and read-only); the BatchCompute
API's keys can be another source of the same :class:`Authenticator` later, and every check
of "may this change things" reads ``Principal.can_write``, whatever proved it.

Sessions live in this process's memory: a restart (or another replica) logs users out,
which is the safe direction. Each carries its own CSRF token, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import argon2
import bcrypt

MAX_SESSIONS = 1000  # the oldest is dropped beyond this: memory stays bounded
LOGIN_FAILURES_ALLOWED = 10  # per client address ...
LOGIN_FAILURE_WINDOW_S = 300.0  # ... within this window; then refused until it slides
MAX_TRACKED_CLIENTS = 10_000  # addresses with recent failures; the oldest forgotten beyond

_hasher = argon2.PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash in argon2-cffi's format (salted, default cost)."""
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` matches an argon2 or bcrypt ``hashed``; never raises for a mismatch."""
    if hashed.startswith("$2"):
        try:
            return bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:
            return False
    try:
        return _hasher.verify(hashed, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, and whether it may change anything."""

    name: str
    can_write: bool


ADMIN = Principal("admin", can_write=True)
READ_ONLY = Principal("read-only", can_write=False)


class CredentialSource(Protocol):
    def check(self, secret: str) -> Principal | None: ...


@dataclass(frozen=True)
class PasswordHashes:
    """The console's passwords, as hashes: the full one and the read-only one (either unset)."""

    full: str = ""
    read_only: str = ""

    def check(self, secret: str) -> Principal | None:
        if self.full and verify_password(self.full, secret):
            return ADMIN
        if self.read_only and verify_password(self.read_only, secret):
            return READ_ONLY
        return None

    def __bool__(self) -> bool:
        return bool(self.full or self.read_only)


@dataclass
class Authenticator:
    """Every configured credential source; the console is on when there is at least one."""

    sources: list[CredentialSource] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return bool(self.sources)

    def check(self, secret: str) -> Principal | None:
        if not secret:
            return None
        for source in self.sources:
            principal = source.check(secret)
            if principal is not None:
                return principal
        return None


@dataclass(frozen=True)
class Session:
    id: str
    principal: Principal
    csrf_token: str
    expires_at: float  # monotonic

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token)


class Sessions:
    """Logged-in sessions by id, each with its CSRF token; expired ones are forgotten."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime_s, self.clock = lifetime_s, clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def start(self, principal: Principal) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            principal=principal,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.lifetime_s,
        )
        self._by_id[session.id] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is not None and session.expires_at <= self.clock():
            del self._by_id[session_id]
            return None
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


class LoginThrottle:
    """Failed logins per client address in a sliding window: guessing stays slow."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= self.clock() - LOGIN_FAILURE_WINDOW_S:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return deque()
        return failures

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= LOGIN_FAILURES_ALLOWED

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(self.clock())
        while len(self._failures) > MAX_TRACKED_CLIENTS:
            del self._failures[next(iter(self._failures))]


def from_hashes(full: str, read_only: str, extra: Iterable[CredentialSource] = ()) -> Authenticator:
    hashes = PasswordHashes(full, read_only)
    return Authenticator([*([hashes] if hashes else []), *extra])
