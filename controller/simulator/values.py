"""Reading a configuration file's values: each a type and a range, or an error naming it."""

from __future__ import annotations

import math
from typing import Any

from controller.errors import ValidationFailed


def in_range(value: float, where: str, low: float, high: float | None = None) -> None:
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValidationFailed(where, f"must be {bounds}, got {value}")


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(where, f"expected true or false, got {value!r}")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(where, f"expected a string, got {value!r}")
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(where, f"expected a number, got {value!r}")
    return float(value)


def integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(where, f"expected a whole number, got {value!r}")
    return value


def listing(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationFailed(where, f"expected a list, got {value!r}")
    return value
