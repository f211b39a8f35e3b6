"""Notification targets: what a user may add (one rule per field), and how a target is shown.

A target's URL often is its credential (a WeCom robot's ``key``, a DingTalk robot's
``access_token``, a token in a path): it is shown masked everywhere (``notify list``, logs,
errors, metrics), and the signing secret is never shown after ``notify add`` printed it once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from controller.core.notices import NoticeType
from controller.errors import ValidationFailed
from controller.store.schema import NOTIFICATION_KINDS

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MASK = "***"
# A path segment this long with a digit in it is taken as a token (Slack, Feishu, Discord...).
TOKEN_SEGMENT_RE = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-=.+]{16,}$")
MAX_SECRET_LENGTH = 256


def event_names() -> list[str]:
    return [t.value for t in NoticeType]


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValidationFailed(
            "name",
            "must be 1 to 63 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


def validate_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url", "must be an http:// or https:// URL with a host")
    if any(ch.isspace() for ch in url.strip()):
        raise ValidationFailed("url", "must not contain spaces")
    return url.strip()


def validate_kind(kind: str) -> str:
    if kind not in NOTIFICATION_KINDS:
        raise ValidationFailed("kind", f"must be one of {', '.join(NOTIFICATION_KINDS)}")
    return kind


def validate_events(events: Iterable[str]) -> list[str]:
    """Known event names, in the order given, without repeats; empty means every event."""
    known = event_names()
    chosen = list(dict.fromkeys(e.strip().upper() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in known]
    if unknown:
        raise ValidationFailed(
            "events", f"unknown event {unknown[0]!r}; known events: {', '.join(known)}"
        )
    return chosen


def validate_secret(kind: str, secret: str | None) -> str | None:
    if secret is None:
        return None
    secret = secret.strip()
    if kind == "wecom":
        raise ValidationFailed(
            "secret", "a WeCom robot has no signing secret: its key is part of the URL"
        )
    if not secret or len(secret) > MAX_SECRET_LENGTH or any(ch.isspace() for ch in secret):
        raise ValidationFailed(
            "secret", f"must be 1 to {MAX_SECRET_LENGTH} characters without spaces"
        )
    return secret


def sensitive_parts(url: str) -> list[str]:
    """The parts of a URL that may be credentials: query values, a password, token-like
    path segments (longest first, so a longer one is replaced before its prefix)."""
    parts = urlsplit(url)
    found = [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    if parts.password:
        found.append(parts.password)
    if parts.username:
        found.append(parts.username)
    found += [seg for seg in parts.path.split("/") if TOKEN_SEGMENT_RE.fullmatch(seg)]
    return sorted({f for f in found if len(f) >= 3}, key=len, reverse=True)


def mask_url(url: str) -> str:
    """``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username or parts.password:
        host = f"{MASK}@{host}"
    path = "/".join(MASK if TOKEN_SEGMENT_RE.fullmatch(s) else s for s in parts.path.split("/"))
    query = "&".join(f"{key}={MASK}" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{host}{path}" + (f"?{query}" if query else "")


def scrub(text: str, url: str, secret: str | None = None) -> str:
    """``text`` (an error message) with the URL's credentials and the secret taken out."""
    text = text.replace(url, mask_url(url))
    for part in [*([secret] if secret else []), *sensitive_parts(url)]:
        text = text.replace(part, MASK)
    return text


def target_view(row: Mapping[str, Any], env_names: Mapping[str, str], depth: int) -> dict[str, Any]:
    """A target as ``notify list`` shows it: never its secret, its URL masked."""

    def stamp(value: datetime | None) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None

    env_ids = [e for e in row["env_ids"].split(",") if e]
    return {
        "name": row["name"],
        "kind": row["kind"],
        "url": mask_url(row["url"]),
        "signed": bool(row["secret"]),
        "events": row["events"].split(",") if row["events"] else ["all"],
        "environments": [env_names.get(e, e) for e in env_ids] or ["all"],
        "pending": depth,
        "delivered": int(row["delivered_count"]),
        "rejected": int(row["rejected_count"]),
        "dropped": int(row["dropped_count"]),
        "last_delivered_at": stamp(row["last_delivered_at"]),
        "last_attempt_at": stamp(row["last_attempt_at"]),
        "next_attempt_at": stamp(row["next_attempt_at"]),
        "last_error": row["last_error"] or None,
    }


def joined(values: Sequence[str]) -> str:
    return ",".join(values)
