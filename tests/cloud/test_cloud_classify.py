"""Every code the reference names lands in the class that says what the caller must do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.cloud import classify
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

EXPECTED: dict[str, type[CloudError]] = {
    # capacity: retry later or elsewhere
    "ResourceInsufficient.SpecifiedInstanceType": CapacityError,
    "ResourcesSoldOut.SpecifiedInstanceType": CapacityError,
    "ResourceInsufficient.AvailabilityZoneSoldOut": CapacityError,
    "ResourceUnavailable.InstanceType": CapacityError,
    "InvalidParameterValue.InsufficientOffering": CapacityError,
    "ResourceInsufficient.InsufficientOfferingMinimum": CapacityError,
    "ResourceInsufficient": CapacityError,
    "ResourceInsufficient.ZoneSoldOutForSpecifiedInstance": CapacityError,
    "ResourcesSoldOut.AvailabilityZoneSoldOut": CapacityError,
    "UnsupportedOperation.StoppedModeStopCharging": OperationRejected,
    "UnsupportedOperation.InstanceStateStopped": OperationRejected,
    # bid below market
    "InvalidParameterValue.InsufficientPrice": PriceTooLow,
    # quota
    "LimitExceeded.SpotQuota": QuotaExceeded,
    "LimitExceeded.UserSpotQuota": QuotaExceeded,
    "LimitExceeded.InstanceQuota": QuotaExceeded,
    "LimitExceeded.CvmInstanceQuota": QuotaExceeded,
    "InstancesQuotaLimitExceeded": QuotaExceeded,
    "LimitExceeded": QuotaExceeded,
    # throttled
    "RequestLimitExceeded": Throttled,
    "RequestLimitExceeded.UinLimitExceeded": Throttled,
    "RequestLimitExceeded.IPLimitExceeded": Throttled,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": Throttled,
    # the spec is wrong
    "InvalidInstanceType.Malformed": InvalidSpec,
    "InvalidParameterValue.InstanceTypeNotFound": InvalidSpec,
    "UnsupportedOperation.NoInstanceTypeSupportSpot": InvalidSpec,
    "UnsupportedOperation.SpotUnsupportedRegion": InvalidSpec,
    "InvalidImageId.Malformed": InvalidSpec,
    "InvalidImageId.NotFound": InvalidSpec,
    "InvalidParameterValue.InvalidImageId": InvalidSpec,
    "InvalidZone.MismatchRegion": InvalidSpec,
    "InvalidParameterValue.ZoneNotSupported": InvalidSpec,
    "InvalidSecurityGroupId.NotFound": InvalidSpec,
    "InvalidClientToken.TooLong": InvalidSpec,
    "InvalidParameter": InvalidSpec,
    "InvalidParameterValue": InvalidSpec,
    "MissingParameter": InvalidSpec,
    "UnknownParameter": InvalidSpec,
    "InvalidAction": InvalidSpec,
    "ResourceNotFound": InvalidSpec,
    "UnsupportedRegion": InvalidSpec,
    # account
    "InvalidAccount.InsufficientBalance": AuthError,
    "AuthFailure.SignatureFailure": AuthError,
    "AuthFailure.SignatureExpire": AuthError,
    "AuthFailure.SecretIdNotFound": AuthError,
    "UnauthorizedOperation": AuthError,
    # server faults and synthetic network codes
    "InternalError": TransientError,
    "ServiceUnavailable": TransientError,
    "Network.Timeout": TransientError,
    "Network.ConnectError": TransientError,
    "Http.503": TransientError,
    "Response.Malformed": TransientError,
    # refused in the current state
    "InvalidInstanceId.NotFound": InstanceNotFound,
    "UnsupportedOperation.InstanceStatePending": OperationRejected,
    "UnsupportedOperation.InstanceStateTerminating": OperationRejected,
    "OperationDenied.InstanceOperationInProgress": OperationRejected,
    "UnsupportedOperation.InstancesProtected": OperationRejected,
    "UnsupportedOperation": OperationRejected,
}


def _reference() -> Path | None:
    """The shared API reference: beside the checkout (CI) or in the workplace."""
    for root in (Path(__file__).resolve().parents[3], Path("/work")):
        path = root / "shared" / "reference" / "tencentcloud-api.md"
        if path.exists():
            return path
    return None


REFERENCE = _reference()
ERROR_ROOTS = {
    "AuthFailure", "InternalError", "InvalidAction", "InvalidParameter", "InvalidParameterValue",
    "MissingParameter", "UnknownParameter", "LimitExceeded", "RequestLimitExceeded",
    "ResourceInsufficient", "ResourceNotFound", "ServiceUnavailable", "UnauthorizedOperation",
    "UnsupportedOperation", "ResourcesSoldOut", "ResourceUnavailable",
    "InstancesQuotaLimitExceeded", "InvalidInstanceType", "InvalidImageId", "InvalidZone",
    "InvalidSecurityGroupId", "InvalidAccount", "InvalidClientToken", "InvalidInstanceId",
    "OperationDenied",
}  # fmt: skip


@pytest.mark.parametrize(("code", "cls"), sorted(EXPECTED.items()))
def test_code_maps_to_class(code: str, cls: type[CloudError]) -> None:
    error = classify.classify(code, "msg", request_id="req-1", action="RunInstances")
    assert type(error) is cls or (cls is InstanceNotFound and isinstance(error, cls))
    assert error.code == code
    assert error.request_id == "req-1"
    assert error.action == "RunInstances"


def test_price_too_low_is_a_capacity_error_for_callers_that_only_know_capacity() -> None:
    error = classify.classify("InvalidParameterValue.InsufficientPrice", "")
    assert isinstance(error, CapacityError)


@pytest.mark.skipif(REFERENCE is None, reason="the shared reference is not beside the checkout")
def test_every_error_code_in_the_reference_is_in_the_table_test() -> None:
    """Codes the CVM sections (1-4) of the reference name are all in EXPECTED, so all tested."""
    assert REFERENCE is not None
    text = REFERENCE.read_text().split("## 5.")[0]
    found = set(re.findall(r"`([A-Z][A-Za-z]+(?:\.[A-Z][A-Za-z]+)*)\*?`", text))
    codes = {code for code in found if code.split(".")[0] in ERROR_ROOTS}
    assert len(codes) > 40
    assert sorted(codes - set(EXPECTED)) == []


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("ResourceInsufficient.SomethingNew", CapacityError),
        ("RequestLimitExceeded.NewLimit", Throttled),
        ("LimitExceeded.SomethingNew", QuotaExceeded),
        ("InvalidParameterValue.SomethingNew", InvalidSpec),
        ("InvalidSomething.New", InvalidSpec),
        ("AuthFailure.New", AuthError),
        ("UnauthorizedOperation.New", AuthError),
        ("InternalError.TradeUnknownError", TransientError),
        ("OperationDenied.Something", OperationRejected),
        ("UnsupportedOperation.InstanceStateStopping", OperationRejected),
        ("FailedOperation.Whatever", CloudError),
        ("TotallyNew", CloudError),
        ("", CloudError),
    ],
)
def test_unknown_codes_fall_to_their_family_or_plain_cloud_error(
    code: str, cls: type[CloudError]
) -> None:
    assert type(classify.classify(code, "m")) is cls


def test_unknown_code_is_not_retryable() -> None:
    error = classify.classify("FailedOperation.Whatever", "m")
    assert error.retryable is False
    assert not error.client_retries


def test_longest_prefix_wins_over_family() -> None:
    assert classify.error_class("InvalidParameterValue.InsufficientPrice") is PriceTooLow
    assert classify.error_class("InvalidParameterValue.InsufficientOffering") is CapacityError
    assert classify.error_class("InvalidAccount.InsufficientBalance") is AuthError
    assert issubclass(classify.error_class("InvalidInstanceId.NotFound"), InstanceNotFound)
    assert classify.error_class("InvalidInstanceId.Malformed") is InvalidSpec


def test_only_transient_and_throttled_are_retried_by_the_client() -> None:
    retried = {code for code in EXPECTED if classify.classify(code, "m").client_retries}
    assert retried == {c for c, cls in EXPECTED.items() if cls in (TransientError, Throttled)}


def test_instance_not_found_carries_the_ids_from_the_message() -> None:
    error = classify.classify(
        "InvalidInstanceId.NotFound",
        "The instances `['ins-abcd1234', 'ins-0000zzzz', 'ins-abcd1234']` are not found",
        request_id="r",
    )
    assert isinstance(error, InstanceNotFound)
    assert isinstance(error, classify.InstanceIdsNotFound)
    assert error.instance_ids == ("ins-abcd1234", "ins-0000zzzz")


def test_instance_not_found_without_ids_has_empty_tuple() -> None:
    error = classify.classify("InvalidInstanceId.NotFound", "not found")
    assert isinstance(error, classify.InstanceIdsNotFound)
    assert error.instance_ids == ()


def test_request_id_and_code_are_in_the_message() -> None:
    error = classify.classify("InternalError", "boom", request_id="abc-123", action="X")
    assert "abc-123" in str(error)
    assert "InternalError" in str(error)


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        classify.TABLE["X"] = CloudError  # type: ignore[index]
