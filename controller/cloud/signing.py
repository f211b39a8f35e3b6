"""TC3-HMAC-SHA256 request signing, shared by the client and the simulator.

The server side must hash the raw body bytes it received, never a re-serialised copy.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The UTC date of a unix timestamp: local time would break part of every day."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def canonical_request(host: str, content_type: str, body: bytes) -> str:
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_headers = (
        f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n"
    )
    return "\n".join(["POST", "/", "", canonical_headers, SIGNED_HEADERS, payload_hash])


def string_to_sign(canonical: str, timestamp: int, service: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(
    secret_key: str, *, host: str, content_type: str, body: bytes, timestamp: int, service: str
) -> str:
    """Hex TC3 signature of a POST to ``/`` with the given body."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), utc_date(timestamp))
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    to_sign = string_to_sign(canonical_request(host, content_type, body), timestamp, service)
    return hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    content_type: str,
    body: bytes,
    timestamp: int,
    service: str,
) -> str:
    """The value of the ``Authorization`` header."""
    sig = signature(
        secret_key,
        host=host,
        content_type=content_type,
        body=body,
        timestamp=timestamp,
        service=service,
    )
    return (
        f"{ALGORITHM} Credential={secret_id}/{utc_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}"
    )


@dataclass(frozen=True)
class ParsedAuthorization:
    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


def parse_authorization(header: str) -> ParsedAuthorization | None:
    """Parse an ``Authorization`` header; ``None`` if it is not a TC3 header."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = value
    try:
        secret_id, date, service, terminator = fields["Credential"].split("/")
        if terminator != "tc3_request":
            return None
        return ParsedAuthorization(
            secret_id, date, service, fields["SignedHeaders"], fields["Signature"]
        )
    except (KeyError, ValueError):
        return None
