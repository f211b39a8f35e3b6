"""A refusal of the service (ValidationFailed, naming a column) as BatchCompute's error.

The code is the one the batch SDK's ``errorcodes.py`` gives the case; the message names the
API field (``ComputeEnv.EnvData.InstanceMarketOptions.SpotOptions.MaxPrice``) and the rule as
the service states it, so a caller reads its own field, not our column.
"""

from __future__ import annotations

from controller.errors import ValidationFailed
from controller.service import EnvironmentNotFound
from controller.service.nodes import NodeNotFound, NodeNotTerminable, NotEnoughNodes
from controller.tencentapi.errors import ApiError

_SPOT = "ComputeEnv.EnvData.InstanceMarketOptions.SpotOptions.MaxPrice"
CREATE_FIELDS = {
    "name": "ComputeEnv.EnvName",
    "desired_count": "ComputeEnv.DesiredComputeNodeCount",
    "description": "ComputeEnv.EnvDescription",
    "zone": "Placement.Zone",
    "project_id": "Placement.ProjectId",
    "fallback_zones": "ComputeEnv.EnvData.Zones",
    "instance_type": "ComputeEnv.EnvData.InstanceType",
    "fallback_instance_types": "ComputeEnv.EnvData.InstanceTypes",
    "image_id": "ComputeEnv.EnvData.ImageId",
    "max_price": _SPOT,
    "security_group_ids": "ComputeEnv.EnvData.SecurityGroupIds",
    "vpc_id": "ComputeEnv.EnvData.VirtualPrivateCloud.VpcId",
    "subnet_id": "ComputeEnv.EnvData.VirtualPrivateCloud.SubnetId",
    "key_ids": "ComputeEnv.EnvData.LoginSettings.KeyIds",
    "instance_name": "ComputeEnv.EnvData.InstanceName",
    "tags": "ComputeEnv.Tags",
    "client_token": "ClientToken",
    "launch_options": "ComputeEnv.EnvData",
}
MODIFY_FIELDS = {
    "name": "EnvName",
    "desired_count": "DesiredComputeNodeCount",
    "description": "EnvDescription",
    "instance_type": "EnvData.InstanceTypes",
    "fallback_instance_types": "EnvData.InstanceTypes",
    "update": "DesiredComputeNodeCount",
}
NODE_FIELDS = {"compute_node_ids": "ComputeNodeIds", "desired_count": "DesiredComputeNodeCount"}


def _code(error: ValidationFailed) -> str:
    column, rule = error.field, error.rule
    if column in ("instance_type", "fallback_instance_types"):
        return "InvalidParameterValue.InstanceType"
    if column in ("zone", "fallback_zones"):
        if "is not in the region" in rule:
            return "InvalidParameterValue.InvalidZoneMismatchRegion"
        return "InvalidParameterValue.UnavailableZone"
    if column == "image_id":
        return "InvalidParameter.ImageIdMalformed"
    if column == "name" and rule.startswith("must be at most"):
        return "InvalidParameter.EnvNameTooLong"
    if column == "description" and rule.startswith("must be at most"):
        return "InvalidParameter.EnvDescriptionTooLong"
    if column == "compute_node_ids" and "is malformed" in rule:
        return "InvalidParameter.ComputeNodeIdMalformed"
    if column == "client_token":
        return "InvalidParameter"
    if column == "launch_options":
        return "InvalidParameter.CvmParameters"
    return "InvalidParameterValue.ComputeEnv"


def refusal(error: ValidationFailed, fields: dict[str, str]) -> ApiError:
    """The ApiError for a refusal of the service, in the words of ``fields`` (column -> API)."""
    if isinstance(error, EnvironmentNotFound):
        return ApiError(
            "ResourceNotFound.ComputeEnv",
            f"The compute environment {error.name_or_id} does not exist.",
        )
    if isinstance(error, NodeNotFound):
        return ApiError("ResourceNotFound.ComputeNode", f"`ComputeNodeIds`: {error.rule}.")
    if isinstance(error, NodeNotTerminable):
        code = (
            "UnsupportedOperation.ComputeNodeIsTerminating"
            if error.state == "DELETING"
            else "UnsupportedOperation.ComputeNodeForbidTerminate"
        )
        return ApiError(code, f"`ComputeNodeIds`: {error.rule}.")
    if isinstance(error, NotEnoughNodes):
        return ApiError(
            "UnsupportedOperation.NotEnoughComputeNodesToTerminate",
            f"`ComputeNodeIds`: {error.rule}.",
        )
    field = fields.get(error.field, error.field)
    if error.field == "launch_options":  # the rule starts with the path inside EnvData
        path, _, rule = error.rule.partition(" ")
        return ApiError(_code(error), f"`{field}.{path}` {rule}.")
    return ApiError(_code(error), f"`{field}` {error.rule} ({error.field}).")
