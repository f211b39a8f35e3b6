"""The one exception hierarchy of spot-controller.

Every error the package raises derives from :class:`SpotControllerError`. Cloud errors are
classified once, at the client, by what the caller must do about them; HTTP and database
library exceptions never escape the module that talks to them.
"""

from __future__ import annotations

from enum import StrEnum


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


class Blocks(StrEnum):
    """What a failed launch blocks, so that the next attempt goes elsewhere or waits."""

    NOTHING = "nothing"  # the outcome is unknown (timeout, throttled): the same token is resent
    OFFERING = "offering"  # the offering, for every environment: its stock is gone
    ENV_OFFERING = "env_offering"  # the offering, for this environment: its bid, quota or spec
    ENVIRONMENT = "environment"  # every offering of the environment: its credentials


class CloudError(SpotControllerError):
    """An error from (or on the way to) the cloud API.

    ``code`` is Tencent's error code (or a synthetic one for network faults) and
    ``request_id`` the response's RequestId, when there was a response.
    """

    #: Whether repeating the same call later may succeed without anything changing.
    retryable: bool = False
    #: Whether the client itself repeats the call at once (server faults, throttling only:
    #: repeating a sold-out launch at once would only burn the rate limit).
    client_retries: bool = False
    #: The short name logs, metrics and backoff use for this kind of failure.
    kind: str = "unknown"
    #: What a launch that failed with this error blocks.
    blocks: Blocks = Blocks.ENV_OFFERING
    #: Whether it heals by itself (capacity, price: exponential backoff) or needs a human
    #: (quota, spec, credentials: retried every error-retry interval).
    heals: bool = False

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
    kind = "capacity"
    blocks = Blocks.OFFERING
    heals = True


class PriceTooLow(CapacityError):
    """The bid is below the current spot price of this pool: try later or another pool."""

    kind = "price"
    blocks = Blocks.ENV_OFFERING  # another environment may bid more


class QuotaExceeded(CloudError):
    """An account or per-type quota is used up: not a capacity problem, retry slowly."""

    kind = "quota"


class Throttled(CloudError):
    """The API rate limit was hit: back off with jitter and retry."""

    retryable = True
    client_retries = True
    kind = "throttled"
    blocks = Blocks.NOTHING


class InvalidSpec(CloudError):
    """The request itself is wrong (type, image, zone, security group): no retry will help."""

    kind = "spec"


class AuthError(CloudError):
    """Credentials or account problem (signature, unknown key, unauthorised, no balance)."""

    kind = "auth"
    blocks = Blocks.ENVIRONMENT


class TransientError(CloudError):
    """A server fault, timeout or dropped connection: safe to retry idempotent calls."""

    retryable = True
    client_retries = True
    kind = "transient"
    blocks = Blocks.NOTHING


class OperationRejected(CloudError):
    """The call was understood but refused in the instance's current state (e.g. still pending)."""


class InstanceNotFound(OperationRejected):
    """An instance id named in the call does not exist (already gone)."""
