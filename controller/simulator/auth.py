"""Checking a request's TC3-HMAC-SHA256 signature as Tencent does.

The signature covers the raw body bytes as received, the ``Content-Type`` and ``Host``
headers as sent, and a timestamp that must be within 300 s of the simulator's clock (so a
test can provoke ``AuthFailure.SignatureExpire`` by offsetting the clock).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from controller.cloud import signing
from controller.simulator.errors import ApiError

SERVICE = "cvm"
MAX_SKEW_S = 300


def authenticate(
    headers: Mapping[str, str], body: bytes, *, secrets: Mapping[str, str], now: float
) -> None:
    """Raise :class:`ApiError` unless the request is signed by a known SecretId."""
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
    secret_key = secrets.get(parsed.secret_id)
    if secret_key is None:
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    if (
        parsed.service != SERVICE
        or parsed.date != signing.utc_date(timestamp)
        or parsed.signed_headers != signing.SIGNED_HEADERS
    ):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            f"The credential scope must be <date of X-TC-Timestamp>/{SERVICE}/tc3_request with "
            f"SignedHeaders={signing.SIGNED_HEADERS}.",
        )
    expected = signing.signature(
        secret_key,
        host=headers.get("host", ""),
        content_type=headers.get("content-type", ""),
        body=body,
        timestamp=timestamp,
        service=SERVICE,
    )
    if not hmac.compare_digest(expected, parsed.signature):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is "
            "correct.",
        )
