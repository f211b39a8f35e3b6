"""The one exception hierarchy of spot-controller.

Every error the package raises derives from :class:`SpotControllerError`. Cloud errors are
classified once, at the client, by what the caller must do about them; HTTP and database
library exceptions never escape the module that talks to them.
"""

from __future__ import annotations


class SpotControllerError(Exception):
    """Root of every error spot-controller raises."""


class ConfigError(SpotControllerError):
    """A setting, argument or file is malformed; the message names it and the rule."""


class StoreError(SpotControllerError):
    """The database could not be reached or refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (connection refused, file not openable)."""


class LeaseLost(StoreError):
    """This replica does not hold the controller lease: it must not write or launch."""


class ValidationFailed(SpotControllerError):
    """A value given by a user breaks a rule; ``field`` names the value, ``rule`` the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class CloudError(SpotControllerError):
    """An error from (or on the way to) the cloud API.

    ``code`` is Tencent's error code (or a synthetic one for network faults) and
    ``request_id`` the response's RequestId, when there was a response.
    """

    #: Whether repeating the same call later may succeed without anything changing.
    retryable: bool = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(
            f"{code}: {message}" + (f" (RequestId {request_id})" if request_id else "")
        )
        self.code = code
        self.message = message
        self.request_id = request_id
        self.action = action


class CapacityError(CloudError):
    """No stock in this (zone, instance type) pool: try later, or another pool."""

    retryable = True


class PriceTooLow(CapacityError):
    """The bid is below the current spot price of this pool: try later or another pool."""


class QuotaExceeded(CloudError):
    """An account or per-type quota is used up: not a capacity problem, retry slowly."""


class Throttled(CloudError):
    """The API rate limit was hit: back off with jitter and retry."""

    retryable = True


class InvalidSpec(CloudError):
    """The request itself is wrong (type, image, zone, security group): no retry will help."""


class AuthError(CloudError):
    """Credentials or account problem (signature, unknown key, unauthorised, no balance)."""


class TransientError(CloudError):
    """A server fault, timeout or dropped connection: safe to retry idempotent calls."""

    retryable = True


class OperationRejected(CloudError):
    """The call was understood but refused in the instance's current state (e.g. still pending)."""


class InstanceNotFound(OperationRejected):
    """An instance id named in the call does not exist (already gone)."""
