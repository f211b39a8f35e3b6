"""A faithful simulator of Tencent's CVM API 3.0, accepted by the official SDK.

``Simulator(config, seed=..., clock=...)`` holds the simulated account and serves it as an
ASGI app (``sim.app``): Tencent's API at ``POST /`` and an admin API under ``/_sim``. Run it
in-process with ``httpx.ASGITransport``, over loopback with
:func:`controller.simulator.server.background_server`, or from the command line with
``spot-controller simulator serve``. The configuration format is documented in
:mod:`controller.simulator.config`, the admin API in :mod:`controller.simulator.admin`.
"""

from controller.simulator.config import FaultsConfig, PoolConfig, ScenarioEvent, SimulatorConfig
from controller.simulator.simulator import Simulator

__all__ = ["FaultsConfig", "PoolConfig", "ScenarioEvent", "Simulator", "SimulatorConfig"]
