"""Tencent error codes, classified once, by what the caller must do about them.

The reconcile loop never looks at a code string: it catches :class:`CapacityError` (try later or
another pool), :class:`PriceTooLow`, :class:`QuotaExceeded` (not capacity: retry slowly),
:class:`Throttled` and :class:`TransientError` (the client already retried them),
:class:`InvalidSpec` and :class:`AuthError` (no retry will help), :class:`OperationRejected` and
:class:`InstanceNotFound`. This module is the only place that maps codes to those classes.

Codes match by longest prefix (plain string prefix, as Tencent's families are written
``RequestLimitExceeded``, ``RequestLimitExceeded.UinLimitExceeded``, ...), so an exact entry beats
its family and a new code Tencent adds under a known family lands in that family's class. A code
no family claims becomes a plain, non-retryable :class:`CloudError`: the safe default is to stop
and show it, never to retry blindly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from controller.errors import (
    AuthError,
    CapacityError,
    CloudError,
    InstanceNotFound,
    InvalidSpec,
    OperationRejected,
    PriceTooLow,
    QuotaExceeded,
    Throttled,
    TransientError,
)

# Synthetic codes for faults that never reached (or never came back from) Tencent.
NETWORK_TIMEOUT = "Network.Timeout"
NETWORK_CONNECT_ERROR = "Network.ConnectError"
NETWORK_ERROR = "Network.Error"
RESPONSE_MALFORMED = "Response.Malformed"
RESPONSE_PAGING_RUNAWAY = "Response.PagingRunaway"
HTTP_PREFIX = "Http."

INSTANCE_NOT_FOUND = "InvalidInstanceId.NotFound"


class InstanceIdsNotFound(InstanceNotFound):
    """:class:`InstanceNotFound` carrying the ids Tencent named in its message.

    ``instance_ids`` is empty when the message names none; callers catch
    :class:`controller.errors.InstanceNotFound` and read ``instance_ids`` from this subclass,
    which is what the client always raises for ``InvalidInstanceId.NotFound``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        action: str | None = None,
        instance_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(code, message, request_id=request_id, action=action)
        self.instance_ids = instance_ids


_TABLE: dict[str, type[CloudError]] = {
    # No stock in the pool: try later or elsewhere.
    "ResourceInsufficient": CapacityError,
    "ResourceInsufficient.SpecifiedInstanceType": CapacityError,
    "ResourceInsufficient.AvailabilityZoneSoldOut": CapacityError,
    "ResourceInsufficient.InsufficientOfferingMinimum": CapacityError,
    "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance": CapacityError,
    "ResourcesSoldOut": CapacityError,
    "ResourcesSoldOut.AvailabilityZoneSoldOut": CapacityError,
    "ResourcesSoldOut.SpecifiedInstanceType": CapacityError,
    "ResourceUnavailable.InstanceType": CapacityError,
    "InvalidParameterValue.InsufficientOffering": CapacityError,
    # Bid below the market.
    "InvalidParameterValue.InsufficientPrice": PriceTooLow,
    # Quota, not capacity.
    "LimitExceeded": QuotaExceeded,
    "LimitExceeded.SpotQuota": QuotaExceeded,
    "LimitExceeded.UserSpotQuota": QuotaExceeded,
    "LimitExceeded.InstanceQuota": QuotaExceeded,
    "LimitExceeded.CvmInstanceQuota": QuotaExceeded,
    "InstancesQuotaLimitExceeded": QuotaExceeded,
    # API rate limit.
    "RequestLimitExceeded": Throttled,
    "RequestLimitExceeded.UinLimitExceeded": Throttled,
    "RequestLimitExceeded.IPLimitExceeded": Throttled,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": Throttled,
    # The request is wrong: no retry will fix it. "Invalid" is the family default for
    # InvalidZone, InvalidImageId, InvalidInstanceType, InvalidSecurityGroupId, InvalidClientToken,
    # InvalidAction and codes Tencent adds later.
    "Invalid": InvalidSpec,
    "InvalidParameter": InvalidSpec,
    "InvalidParameterValue": InvalidSpec,
    "InvalidParameterValue.InstanceTypeNotFound": InvalidSpec,
    "InvalidParameterValue.InvalidImageId": InvalidSpec,
    "InvalidParameterValue.ZoneNotSupported": InvalidSpec,
    "InvalidInstanceType": InvalidSpec,
    "InvalidInstanceType.Malformed": InvalidSpec,
    "InvalidImageId": InvalidSpec,
    "InvalidImageId.Malformed": InvalidSpec,
    "InvalidImageId.NotFound": InvalidSpec,
    "InvalidZone": InvalidSpec,
    "InvalidZone.MismatchRegion": InvalidSpec,
    "InvalidSecurityGroupId": InvalidSpec,
    "InvalidSecurityGroupId.NotFound": InvalidSpec,
    "InvalidClientToken": InvalidSpec,
    "InvalidClientToken.TooLong": InvalidSpec,
    "InvalidInstanceId": InvalidSpec,
    "MissingParameter": InvalidSpec,
    "UnknownParameter": InvalidSpec,
    "ResourceNotFound": InvalidSpec,
    "UnsupportedRegion": InvalidSpec,
    "UnsupportedOperation.NoInstanceTypeSupportSpot": InvalidSpec,
    "UnsupportedOperation.SpotUnsupportedRegion": InvalidSpec,
    # Credentials or account.
    "AuthFailure": AuthError,
    "AuthFailure.SignatureFailure": AuthError,
    "AuthFailure.SignatureExpire": AuthError,
    "AuthFailure.SecretIdNotFound": AuthError,
    "UnauthorizedOperation": AuthError,
    "InvalidAccount": AuthError,
    "InvalidAccount.InsufficientBalance": AuthError,
    "InvalidPermission": AuthError,
    # Server faults: safe to retry.
    "InternalError": TransientError,
    "ServiceUnavailable": TransientError,
    "Network.": TransientError,
    HTTP_PREFIX: TransientError,
    "Response.": TransientError,
    # Understood, but refused in the instance's current state.
    "UnsupportedOperation": OperationRejected,
    "UnsupportedOperation.InstanceState": OperationRejected,
    "UnsupportedOperation.InstanceStatePending": OperationRejected,
    "UnsupportedOperation.InstanceStateTerminating": OperationRejected,
    "UnsupportedOperation.InstancesProtected": OperationRejected,
    "OperationDenied": OperationRejected,
    "OperationDenied.InstanceOperationInProgress": OperationRejected,
    INSTANCE_NOT_FOUND: InstanceIdsNotFound,
}

#: Code prefix -> class; read-only, so a test can walk it and nothing can patch it.
TABLE: Mapping[str, type[CloudError]] = MappingProxyType(_TABLE)

# Longest first, so the first match is the longest prefix.
_PREFIXES = sorted(_TABLE, key=len, reverse=True)
_INSTANCE_ID = re.compile(r"\bins-[0-9a-z]{8}\b")


def error_class(code: str) -> type[CloudError]:
    """The class for ``code``: its longest matching prefix, else plain :class:`CloudError`."""
    for prefix in _PREFIXES:
        if code.startswith(prefix):
            return _TABLE[prefix]
    return CloudError


def instance_ids_in(message: str) -> tuple[str, ...]:
    """Instance ids named in an error message, in order, without repeats."""
    return tuple(dict.fromkeys(_INSTANCE_ID.findall(message)))


def classify(
    code: str, message: str, *, request_id: str | None = None, action: str | None = None
) -> CloudError:
    """The exception to raise for an error answer (or synthetic fault) of ``action``.

    ``message`` must already be free of secrets and user data: it goes into ``str(error)``.
    """
    cls = error_class(code)
    if cls is InstanceIdsNotFound:
        return InstanceIdsNotFound(
            code,
            message,
            request_id=request_id,
            action=action,
            instance_ids=instance_ids_in(message),
        )
    return cls(code, message, request_id=request_id, action=action)
