"""Reading a Tencent API request's parameters, with Tencent's errors for bad ones.

Tencent rejects a parameter it does not know (``UnknownParameter``), a missing required one
(``MissingParameter``) and one of the wrong JSON type (``InvalidParameter``), naming it with
its dotted path (``Placement.Zone``); so does the simulator, so that a client's typo fails
here as it would in production instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.tencentapi.errors import ApiError


class Params:
    """A JSON object of request parameters, ``prefix`` being its path for messages."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix

    def name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def value(self, key: str) -> Any:
        """The parameter as it came (plain JSON), for a value passed on without reading it."""
        return self._data.get(key)

    def reject_unknown(self, known: Iterable[str]) -> None:
        allowed = set(known)
        for key in self._data:
            if key not in allowed:
                raise ApiError(
                    "UnknownParameter", f"The parameter `{self.name(key)}` is not recognized."
                )

    def _get(self, key: str, required: bool) -> Any:
        value = self._data.get(key)
        if value is None and required:
            raise ApiError(
                "MissingParameter",
                f"The request is missing a required parameter `{self.name(key)}`.",
            )
        return value

    def _wrong_type(self, key: str, expected: str) -> ApiError:
        return ApiError(
            "InvalidParameter", f"The parameter `{self.name(key)}` must be of type {expected}."
        )

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, str):
            raise self._wrong_type(key, "String")
        return value

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._wrong_type(key, "Integer")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, bool):
            raise self._wrong_type(key, "Boolean")
        return value

    def strings(self, key: str, *, required: bool = False) -> list[str] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong_type(key, "Array of String")
        return value

    def object(self, key: str, *, required: bool = False) -> Params | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._wrong_type(key, "Object")
        return Params(value, f"{self.name(key)}.")

    def objects(self, key: str, *, required: bool = False) -> list[Params] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self._wrong_type(key, "Array of Object")
        return [Params(item, f"{self.name(key)}.{i}.") for i, item in enumerate(value)]
