"""What the CLI, the BatchCompute API and the console call.

Validation and typed views of compute environments over the store; the store only stores.
"""

from controller.service.environments import EnvironmentNotFound, Environments
from controller.service.market import Market, OfferingView
from controller.service.views import ActivityView, EnvironmentView, NodeView

__all__ = [
    "ActivityView",
    "EnvironmentNotFound",
    "EnvironmentView",
    "Environments",
    "Market",
    "NodeView",
    "OfferingView",
]
