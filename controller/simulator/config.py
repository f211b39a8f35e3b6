"""Configuration of the CVM simulator: credentials, timings, the market, faults and a scenario.

``SimulatorConfig.default()`` is a sensible market in seven real regions (zones from
:mod:`controller.core.regions`): ap-guangzhou (zones 3, 4, 6, 7), ap-shanghai (2, 4, 5),
ap-beijing (5, 6, 7), ap-nanjing (1, 2, 3), ap-chengdu (1, 2), ap-hongkong (2, 3) and
ap-singapore (3, 4), selling S5.SMALL2, S5.MEDIUM4, S5.LARGE8, SA2.MEDIUM4 and SA2.LARGE8
everywhere and S2.MEDIUM4, SA3.MEDIUM4 and SA3.LARGE8 in some ap-guangzhou and ap-shanghai
zones, at spot prices from 0.05 to 0.28 CNY/hour (S2.MEDIUM4 in ap-guangzhou-3: 0.12), plus
GN7.2XLARGE32 pay-as-you-go only in ap-guangzhou-3 and ap-shanghai-4; 5000 instances of
stock and a quota of 10000 per pool; instances take 3 s to start and 1 s to terminate; no
faults except Tencent's own rate limits (:mod:`controller.simulator.limits`: RunInstances and
the power actions 10/s, DescribeInstances and DescribeInstancesStatus 40/s, the rest 20/s,
measured on the simulator's clock). The
credentials are TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY when set, else the
simulator's documented pair (``controller.settings.SIMULATOR_SECRET_ID`` / ``_KEY``).

``SimulatorConfig.from_file(path)`` reads JSON (``.json``) or TOML (``.toml``) whose keys are
the fields below; an unknown key, a wrong type or a value out of range raises
:class:`~controller.errors.ConfigError` naming the file, the field and the rule. The file's
keys, with an example, are in ``docs/simulator.md`` ("The configuration file").
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from controller import settings
from controller.errors import ConfigError, ValidationFailed
from controller.simulator import commands, values
from controller.simulator.limits import TENCENT_RATE_LIMITS
from controller.simulator.market import (
    DEFAULT_ON_DEMAND_STOCK,
    DEFAULT_QUOTA,
    DEFAULT_STOCK,
    INSTANCE_TYPE_PATTERN,
    ON_DEMAND_ONLY,
    REGION_PATTERN,
    SPOT_DISCOUNT,
    ZONE_PATTERN,
    default_pools,
    spec_of,
)

IMAGE_ID_PATTERN = re.compile(r"^img-[a-z0-9]{8}$")

# Public image ids as they appear in Tencent's docs and examples.
DEFAULT_IMAGES = (
    "img-pmqg1cw7",
    "img-487zeit5",
    "img-eb30mz89",
    "img-9qabwvbn",
    "img-l8og963d",
)


def _env_or(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass
class PoolConfig:
    """One pool of the market at start: a (zone, instance type) pair and what it sells.

    ``price`` is the spot price in CNY/hour; ``stock`` the instances it can sell; ``quota`` the
    most instances of this type alive at once in this zone for the account. ``cpu`` and
    ``memory`` (GB) of 0 are read from the type name (MEDIUM4 -> 2 vCPUs, 4 GB), and an
    ``on_demand_price`` of 0 is the spot price / 0.2.
    """

    zone: str
    instance_type: str
    price: float
    stock: int = DEFAULT_STOCK
    quota: int = DEFAULT_QUOTA
    cpu: int = 0
    memory: int = 0
    on_demand_price: float = 0.0
    spot: bool = True
    """False: sold pay-as-you-go only (SPOTPAID: UnsupportedOperation.NoInstanceTypeSupportSpot)."""
    on_demand_stock: int = DEFAULT_ON_DEMAND_STOCK

    def __post_init__(self) -> None:
        cpu, memory = spec_of(self.instance_type)
        self.cpu = self.cpu or cpu
        self.memory = self.memory or memory
        if not self.on_demand_price and self.price > 0:
            self.on_demand_price = round(self.price / SPOT_DISCOUNT, 4)


@dataclass
class FaultsConfig:
    """Faults of the API calls (never of the /_sim admin calls); rates are fractions of calls.

    A timed-out call has done its work before it hangs, so a client that retries after its
    own timeout sees the effect of the first attempt: that is what ClientToken is for.
    """

    error_rate: float = 0.0
    """Fraction of calls answered ``InternalError`` without doing anything."""
    http_error_rate: float = 0.0
    """Fraction of calls answered HTTP 503 with a non-JSON body, without doing anything."""
    timeout_rate: float = 0.0
    """Fraction of calls that are processed, then hang ``timeout_hang_s`` before answering."""
    timeout_hang_s: float = 60.0
    """How long a timed-out call hangs (real seconds), unless the client goes away first."""
    latency_ms: float = 0.0
    """Real delay added to every API call, milliseconds."""
    describe_lag_s: float = 0.0
    """Instances younger than this (simulator seconds) are invisible to Describe*."""
    rate_limits: dict[str, float | None] = field(default_factory=lambda: dict(TENCENT_RATE_LIMITS))
    """Calls per second per action (token bucket, burst = rate); None = unlimited."""


@dataclass
class ScenarioEvent:
    """A command applied ``at_s`` seconds after the simulator starts or is reset.

    ``action`` is one of market, reclaim, release, faults and ``payload`` is what the admin
    endpoint of the same name takes.
    """

    at_s: float
    action: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatorConfig:
    """Everything the simulator starts from; ``/_sim/reset`` returns to it."""

    auth_enabled: bool = True
    secret_id: str = field(
        default_factory=lambda: _env_or("TENCENTCLOUD_SECRET_ID", settings.SIMULATOR_SECRET_ID)
    )
    secret_key: str = field(
        default_factory=lambda: _env_or("TENCENTCLOUD_SECRET_KEY", settings.SIMULATOR_SECRET_KEY),
        repr=False,
    )
    session_token: str = field(default="", repr=False)
    """The one X-TC-Token accepted (temporary credentials); empty: any token is refused."""
    region: str = field(default_factory=lambda: _env_or("TENCENTCLOUD_REGION", "ap-guangzhou"))
    """Home region: accepted in X-TC-Region even when no pool is there."""
    launch_delay_s: float = 3.0
    """Seconds from RunInstances to RUNNING (or LAUNCH_FAILED)."""
    launch_failure_rate: float = 0.0
    """Fraction of launched instances that end LAUNCH_FAILED instead of RUNNING."""
    terminate_delay_s: float = 1.0
    """Seconds an instance stays TERMINATING before it is gone."""
    power_delay_s: float = 1.0
    """Seconds an instance stays STOPPING, STARTING or REBOOTING."""
    reclaim_rate_per_hour: float = 0.0
    """Fraction of running spot instances reclaimed per hour (0 to 1)."""
    max_instance_count: int = 500
    """Largest InstanceCount of one RunInstances call."""
    markets: list[PoolConfig] = field(
        default_factory=lambda: [
            *(PoolConfig(z, t, p) for z, t, p in default_pools()),
            *(PoolConfig(z, t, p, on_demand_price=p, spot=False) for z, t, p in ON_DEMAND_ONLY),
        ]
    )
    spot_vcpu_quota: int = 100_000
    """The account's spot quota per zone in vCPUs (LimitExceeded.UserSpotQuota beyond it)."""
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    scenario: list[ScenarioEvent] = field(default_factory=list)
    images: list[str] = field(default_factory=lambda: list(DEFAULT_IMAGES))

    @classmethod
    def default(cls) -> SimulatorConfig:
        """The default market, credentials from the environment, Tencent's rate limits."""
        return cls()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SimulatorConfig:
        """Read a JSON or TOML file (by extension); see the module docstring for the format."""
        where = str(path)
        suffix = Path(path).suffix.lower()
        if suffix not in (".json", ".toml"):
            raise ConfigError(f"{where}: unsupported extension {suffix!r}, use .json or .toml")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read: {exc}") from None
        data: Any
        if suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                ) from None
        else:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{where}: not valid TOML: {exc}") from None
        try:
            config = cls.from_mapping(data)
            config.check()
        except ValidationFailed as exc:
            raise ConfigError(f"{where}: {exc.field}: {exc.rule}") from None
        return config

    @classmethod
    def from_mapping(cls, data: Any) -> SimulatorConfig:
        """Build from parsed JSON/TOML; raises ValidationFailed naming the field."""
        if not isinstance(data, Mapping):
            raise ValidationFailed("(top level)", "must be a table/object of settings")
        _known(data, cls, "")
        config = cls()
        for key in ("auth_enabled",):
            if key in data:
                setattr(config, key, values.boolean(data[key], key))
        for key in ("secret_id", "secret_key", "session_token", "region"):
            if key in data:
                setattr(config, key, values.string(data[key], key))
        for key in (
            "launch_delay_s",
            "launch_failure_rate",
            "terminate_delay_s",
            "power_delay_s",
            "reclaim_rate_per_hour",
        ):
            if key in data:
                setattr(config, key, values.number(data[key], key))
        for key in ("max_instance_count", "spot_vcpu_quota"):
            if key in data:
                setattr(config, key, values.integer(data[key], key))
        if "markets" in data:
            config.markets = [
                _pool(item, f"markets[{i}]")
                for i, item in enumerate(values.listing(data["markets"], "markets"))
            ]
        if "faults" in data:
            config.faults = _faults(data["faults"], "faults")
        if "scenario" in data:
            config.scenario = [
                _event(item, f"scenario[{i}]")
                for i, item in enumerate(values.listing(data["scenario"], "scenario"))
            ]
        if "images" in data:
            config.images = [
                values.string(item, f"images[{i}]")
                for i, item in enumerate(values.listing(data["images"], "images"))
            ]
        return config

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field and rule if a value is out of range."""
        try:
            self.check()
        except ValidationFailed as exc:
            raise ConfigError(f"{exc.field}: {exc.rule}") from None

    def check(self) -> None:
        """Like :meth:`validate`, raising :class:`ValidationFailed`."""
        if self.auth_enabled and not (self.secret_id and self.secret_key):
            raise ValidationFailed("secret_id", "secret_id and secret_key are required with auth")
        if not REGION_PATTERN.match(self.region):
            raise ValidationFailed("region", f"must look like ap-guangzhou, got {self.region!r}")
        values.in_range(self.launch_delay_s, "launch_delay_s", 0.0)
        values.in_range(self.terminate_delay_s, "terminate_delay_s", 0.0)
        values.in_range(self.power_delay_s, "power_delay_s", 0.0)
        values.in_range(self.launch_failure_rate, "launch_failure_rate", 0.0, 1.0)
        values.in_range(self.reclaim_rate_per_hour, "reclaim_rate_per_hour", 0.0, 1.0)
        if not 1 <= self.max_instance_count <= 1000:
            raise ValidationFailed("max_instance_count", "must be between 1 and 1000")
        if self.spot_vcpu_quota < 0:
            raise ValidationFailed("spot_vcpu_quota", "must be at least 0")
        seen: set[tuple[str, str]] = set()
        for i, pool in enumerate(self.markets):
            where = f"markets[{i}]"
            if not ZONE_PATTERN.match(pool.zone):
                raise ValidationFailed(
                    f"{where}.zone", f"must look like ap-guangzhou-3, got {pool.zone!r}"
                )
            if not INSTANCE_TYPE_PATTERN.match(pool.instance_type):
                raise ValidationFailed(
                    f"{where}.instance_type",
                    f"must look like S5.MEDIUM4, got {pool.instance_type!r}",
                )
            if (pool.zone, pool.instance_type) in seen:
                raise ValidationFailed(where, f"{pool.zone} / {pool.instance_type} is listed twice")
            seen.add((pool.zone, pool.instance_type))
            if not pool.price > 0:
                raise ValidationFailed(
                    f"{where}.price", f"must be greater than 0, got {pool.price}"
                )
            if not pool.on_demand_price > 0:
                raise ValidationFailed(f"{where}.on_demand_price", "must be greater than 0")
            for name in ("stock", "quota"):
                if getattr(pool, name) < 0:
                    raise ValidationFailed(f"{where}.{name}", "must be at least 0")
            for name in ("cpu", "memory"):
                if getattr(pool, name) < 1:
                    raise ValidationFailed(f"{where}.{name}", "must be at least 1")
        faults = self.faults
        for name in commands.FAULT_RATES:
            values.in_range(getattr(faults, name), f"faults.{name}", 0.0, 1.0)
        for name in commands.FAULT_DURATIONS:
            values.in_range(getattr(faults, name), f"faults.{name}", 0.0)
        commands.parse_rate_limits(faults.rate_limits, "faults.rate_limits")
        for i, event in enumerate(self.scenario):
            where = f"scenario[{i}]"
            values.in_range(event.at_s, f"{where}.at_s", 0.0)
            try:
                commands.parse(event.action, event.payload)
            except ValidationFailed as exc:
                raise ValidationFailed(f"{where}.{exc.field}", exc.rule) from None
        for i, image in enumerate(self.images):
            if not IMAGE_ID_PATTERN.match(image):
                raise ValidationFailed(
                    f"images[{i}]", f"must look like img-xxxxxxxx, got {image!r}"
                )

    def copy(self) -> SimulatorConfig:
        return copy.deepcopy(self)


def _known(data: Mapping[str, Any], cls: type, where: str) -> None:
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise ValidationFailed(
                f"{where}{key}", f"unknown field (expected one of {', '.join(names)})"
            )


def _pool(data: Any, where: str) -> PoolConfig:
    if not isinstance(data, Mapping):
        raise ValidationFailed(where, "must be a table/object")
    _known(data, PoolConfig, f"{where}.")
    for key in ("zone", "instance_type", "price"):
        if key not in data:
            raise ValidationFailed(f"{where}.{key}", "is required")
    return PoolConfig(
        zone=values.string(data["zone"], f"{where}.zone"),
        instance_type=values.string(data["instance_type"], f"{where}.instance_type"),
        price=values.number(data["price"], f"{where}.price"),
        stock=values.integer(data.get("stock", DEFAULT_STOCK), f"{where}.stock"),
        quota=values.integer(data.get("quota", DEFAULT_QUOTA), f"{where}.quota"),
        cpu=values.integer(data.get("cpu", 0), f"{where}.cpu"),
        memory=values.integer(data.get("memory", 0), f"{where}.memory"),
        on_demand_price=values.number(data.get("on_demand_price", 0.0), f"{where}.on_demand_price"),
        spot=values.boolean(data.get("spot", True), f"{where}.spot"),
        on_demand_stock=values.integer(
            data.get("on_demand_stock", DEFAULT_ON_DEMAND_STOCK), f"{where}.on_demand_stock"
        ),
    )


def _faults(data: Any, where: str) -> FaultsConfig:
    if not isinstance(data, Mapping):
        raise ValidationFailed(where, "must be a table/object")
    _known(data, FaultsConfig, f"{where}.")
    faults = FaultsConfig()
    for name in (*commands.FAULT_RATES, *commands.FAULT_DURATIONS):
        if name in data:
            setattr(faults, name, values.number(data[name], f"{where}.{name}"))
    if "rate_limits" in data:
        if data["rate_limits"] is None:
            faults.rate_limits = {}
        else:
            faults.rate_limits.update(
                commands.parse_rate_limits(data["rate_limits"], f"{where}.rate_limits")
            )
    return faults


def _event(data: Any, where: str) -> ScenarioEvent:
    if not isinstance(data, Mapping):
        raise ValidationFailed(where, "must be a table/object")
    if "at_s" not in data:
        raise ValidationFailed(f"{where}.at_s", "is required")
    if "action" not in data:
        raise ValidationFailed(f"{where}.action", "is required")
    payload = {k: v for k, v in data.items() if k not in ("at_s", "action")}
    return ScenarioEvent(
        at_s=values.number(data["at_s"], f"{where}.at_s"),
        action=values.string(data["action"], f"{where}.action"),
        payload=payload,
    )
