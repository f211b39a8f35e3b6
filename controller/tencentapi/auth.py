"""Checking a request's TC3-HMAC-SHA256 signature as Tencent does.

The signature covers the raw body bytes as received, the ``Content-Type`` and ``Host``
headers as sent, and a timestamp that must be within 300 s of the server's clock (so a
test can provoke ``AuthFailure.SignatureExpire`` by offsetting the clock). The check is in two
steps, :func:`read_authorization` then :func:`verify`, so that a server whose keys live in a
database can look the SecretId up in between without holding anything else.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from controller.cloud import signing
from controller.tencentapi.errors import ApiError

MAX_SKEW_S = 300


@dataclass(frozen=True)
class SignedRequest:
    """What the Authorization header and X-TC-Timestamp say, before the secret is known."""

    authorization: signing.ParsedAuthorization
    timestamp: int

    @property
    def secret_id(self) -> str:
        return self.authorization.secret_id


def read_authorization(headers: Mapping[str, str], *, now: float) -> SignedRequest:
    """The request's claimed SecretId and timestamp; ApiError if absent, malformed or expired."""
    header = headers.get("authorization")
    if not header:
        raise ApiError(
            "MissingParameter", "The request is missing a required parameter `Authorization`."
        )
    raw_timestamp = headers.get("x-tc-timestamp")
    if not raw_timestamp:
        raise ApiError(
            "MissingParameter", "The request is missing a required parameter `X-TC-Timestamp`."
        )
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise ApiError(
            "InvalidParameter", f"The header `X-TC-Timestamp` is not an integer: {raw_timestamp!r}."
        ) from None
    parsed = signing.parse_authorization(header)
    if parsed is None:
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        )
    if abs(timestamp - now) > MAX_SKEW_S:
        raise ApiError(
            "AuthFailure.SignatureExpire",
            f"Signature expired: the timestamp {timestamp} is more than {MAX_SKEW_S} s from the "
            f"server time {int(now)}.",
        )
    return SignedRequest(parsed, timestamp)


def verify(
    signed: SignedRequest,
    secret_key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    service: str,
) -> None:
    """Raise ApiError unless ``secret_key`` signed this request for ``service``."""
    parsed = signed.authorization
    if (
        parsed.service != service
        or parsed.date != signing.utc_date(signed.timestamp)
        or parsed.signed_headers != signing.SIGNED_HEADERS
    ):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            f"The credential scope must be <date of X-TC-Timestamp>/{service}/tc3_request with "
            f"SignedHeaders={signing.SIGNED_HEADERS}.",
        )
    expected = signing.signature(
        secret_key,
        host=headers.get("host", ""),
        content_type=headers.get("content-type", ""),
        body=body,
        timestamp=signed.timestamp,
        service=service,
    )
    if not hmac.compare_digest(expected, parsed.signature):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is "
            "correct.",
        )


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Mapping[str, str],
    now: float,
    service: str,
) -> str:
    """Both steps against a fixed set of keys; the SecretId that signed the request."""
    signed = read_authorization(headers, now=now)
    secret_key = secrets.get(signed.secret_id)
    if secret_key is None:
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    verify(signed, secret_key, headers, body, service=service)
    return signed.secret_id
