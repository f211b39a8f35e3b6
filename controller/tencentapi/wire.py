"""Tencent's envelope: the body of a call, its answer, its error form and its request id.

Every answer is HTTP 200 with ``Content-Type: application/json`` exactly (the SDK parses
errors only under that type), ``{"Response": {..., "RequestId": "<lowercase uuid4>"}}``, and
an error is ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from controller.tencentapi.errors import ApiError
from controller.tencentapi.messages import localized

JSON = "application/json"


def new_request_id() -> str:
    return str(uuid.uuid4())


def check_content_type(headers: Mapping[str, str], *, server: str) -> None:
    """JSON only: a form body is the v1 (HmacSHA1/HmacSHA256) signature, which is refused."""
    content_type = headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        raise ApiError(
            "UnsupportedOperation",
            f"The {server} takes the TC3-HMAC-SHA256 signature with a JSON body only, not the "
            "HmacSHA1/HmacSHA256 (v1) signature with a form body.",
        )
    if media != JSON:
        raise ApiError(
            "InvalidParameter",
            f"The header `Content-Type` must be application/json, got `{content_type}`.",
        )


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's parameters: a JSON object (an empty body is no parameters)."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("InvalidParameter", f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(params, dict):
        raise ApiError("InvalidParameter", "The request body must be a JSON object.")
    return params


def error_fields(error: ApiError, language: str | None) -> dict[str, Any]:
    message = localized(error.code, error.message, language)
    return {"Error": {"Code": error.code, "Message": message}}


def envelope(response: Mapping[str, Any], request_id: str) -> bytes:
    """The answer's bytes: ``response``'s fields and the RequestId under ``Response``."""
    body = {**response, "RequestId": request_id}
    return json.dumps({"Response": body}, ensure_ascii=False).encode("utf-8")
