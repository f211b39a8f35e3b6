"""Errors the simulated API answers with, and the admin API's payload errors.

:class:`ApiError` is raised anywhere inside the simulator (state machine, parameter readers,
authentication) and turned into Tencent's error envelope once, at the HTTP edge, so the
state machine never builds a response itself.
"""

from __future__ import annotations

from controller.errors import SpotControllerError


class ApiError(SpotControllerError):
    """A Tencent API error: ``code`` such as ``InvalidParameterValue.InsufficientPrice``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
