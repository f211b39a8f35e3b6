"""One Settings object, read once from the environment and passed explicitly.

Each field records the environment variable it comes from, its default and its unit, so
the README table and ``spot-controller config`` are generated from the same source.
Durations are seconds and named ``*_s``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from controller.core.regions import (
    REGION_NAME_RE,
    is_known_region,
    known_region_names,
    region_of_zone,
)
from controller.errors import ConfigError
from controller.secrets import Secret, mask_url_password

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///spot-controller.db"
DEFAULT_CVM_ENDPOINT = "https://cvm.tencentcloudapi.com"
DEFAULT_RATE_LIMITS = {
    "RunInstances": 10.0,
    "TerminateInstances": 10.0,
    "DescribeInstances": 40.0,
    "DescribeInstancesStatus": 40.0,
}
# Simulator credentials when none are configured, documented in the README; never valid on Tencent.
SIMULATOR_SECRET_ID = "AKIDsimulator00000000000000000000000"
SIMULATOR_SECRET_KEY = "simulator-secret-key-not-for-production"
# The hashes the console verifies: argon2 (argon2-cffi's own format) or bcrypt.
PASSWORD_HASH_RE = re.compile(r"^(\$argon2(id|i|d)\$v=\d+\$\S+|\$2[aby]\$\d\d\$\S{53})$")
MIN_MASTER_KEY_LENGTH = 32


def _setting(env: str, default: Any, doc: str, unit: str = "") -> Any:
    meta = {"env": env, "doc": doc, "unit": unit}
    if isinstance(default, dict):
        return field(default_factory=lambda: MappingProxyType(dict(default)), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting(
        "SPOT_CONTROLLER_DATABASE_URL",
        DEFAULT_DATABASE_URL,
        "SQLAlchemy URL of the desired-state store; sqlite:/// and postgresql:// are accepted "
        "and given their async drivers",
    )
    cluster: str = _setting(
        "SPOT_CONTROLLER_CLUSTER",
        "default",
        "Name tagged on every instance (spot-controller:cluster); controllers with other "
        "names never touch these instances",
    )
    cvm_endpoint: str = _setting(
        "SPOT_CONTROLLER_CVM_ENDPOINT",
        DEFAULT_CVM_ENDPOINT,
        "CVM API endpoint; http://127.0.0.1:9000 for a local simulator",
    )
    secret_id: Secret = _setting(
        "TENCENTCLOUD_SECRET_ID", Secret(""), "Tencent Cloud SecretId (never logged)"
    )
    secret_key: Secret = _setting(
        "TENCENTCLOUD_SECRET_KEY", Secret(""), "Tencent Cloud SecretKey (never logged)"
    )
    session_token: Secret = _setting(
        "TENCENTCLOUD_SESSION_TOKEN",
        Secret(""),
        "Session token of temporary credentials, sent as X-TC-Token (never logged)",
    )
    region: str = _setting(
        "TENCENTCLOUD_REGION",
        "ap-guangzhou",
        "Tencent Cloud region of the environments' zones; must be in the built-in list of "
        "Tencent's regions or in SPOT_CONTROLLER_EXTRA_REGIONS",
    )
    extra_regions: tuple[str, ...] = _setting(
        "SPOT_CONTROLLER_EXTRA_REGIONS",
        (),
        "Regions accepted in TENCENTCLOUD_REGION besides the built-in list, comma-separated "
        "(e.g. ap-newcity): for a region Tencent opened after this version",
    )
    cvm_connect_timeout_s: float = _setting(
        "SPOT_CONTROLLER_CVM_CONNECT_TIMEOUT_S", 5.0, "Connect timeout of a CVM call", "s"
    )
    cvm_timeout_s: float = _setting(
        "SPOT_CONTROLLER_CVM_TIMEOUT_S", 30.0, "Read timeout of a CVM call", "s"
    )
    cvm_max_attempts: int = _setting(
        "SPOT_CONTROLLER_CVM_MAX_ATTEMPTS",
        4,
        "Attempts per call for transient faults and throttling (same ClientToken for launches)",
        "calls",
    )
    cvm_retry_base_s: float = _setting(
        "SPOT_CONTROLLER_CVM_RETRY_BASE_S", 0.2, "First retry backoff cap (full jitter)", "s"
    )
    cvm_retry_max_s: float = _setting(
        "SPOT_CONTROLLER_CVM_RETRY_MAX_S", 5.0, "Largest retry backoff cap", "s"
    )
    rate_limits: Mapping[str, float] = _setting(
        "SPOT_CONTROLLER_RATE_LIMITS",
        DEFAULT_RATE_LIMITS,
        "Client-side calls per second per action, shared by the process, as "
        "Action=rate,...; actions not named keep Tencent's defaults",
        "calls/s",
    )
    max_inflight_calls: int = _setting(
        "SPOT_CONTROLLER_MAX_INFLIGHT_CALLS", 32, "Cap on concurrent CVM calls", "calls"
    )
    launch_batch_max: int = _setting(
        "SPOT_CONTROLLER_LAUNCH_BATCH_MAX",
        100,
        "Largest InstanceCount of one RunInstances call",
        "instances",
    )
    poll_interval_s: float = _setting(
        "SPOT_CONTROLLER_POLL_INTERVAL_S",
        1.0,
        "How often the daemon checks compute_environments for changes (one counter; the rows "
        "when it moved)",
        "s",
    )
    resync_interval_s: float = _setting(
        "SPOT_CONTROLLER_RESYNC_INTERVAL_S",
        10.0,
        "How often the daemon sweeps DescribeInstances when nothing is in flight",
        "s",
    )
    probe_interval_s: float = _setting(
        "SPOT_CONTROLLER_PROBE_INTERVAL_S",
        1.0,
        "How often the daemon lists this cluster's instances being reclaimed (one "
        "DescribeInstances filtered on instance-state), to replace them before the next sweep; "
        "spaced out so probes cost at most a tenth of the sweeps' calls; 0 turns probing off",
        "s",
    )
    launch_timeout_s: float = _setting(
        "SPOT_CONTROLLER_LAUNCH_TIMEOUT_S",
        300.0,
        "An instance PENDING longer than this counts as failed and is replaced",
        "s",
    )
    visibility_grace_s: float = _setting(
        "SPOT_CONTROLLER_VISIBILITY_GRACE_S",
        30.0,
        "An instance RunInstances returned that DescribeInstances has not shown for this long "
        "is taken as gone (reclaimed or released before it was seen) and replaced",
        "s",
    )
    orphan_grace_s: float = _setting(
        "SPOT_CONTROLLER_ORPHAN_GRACE_S",
        30.0,
        "A tagged instance with no live environment is terminated after this long",
        "s",
    )
    backoff_base_s: float = _setting(
        "SPOT_CONTROLLER_BACKOFF_BASE_S",
        5.0,
        "First backoff of a pool after a capacity or price failure",
        "s",
    )
    backoff_max_s: float = _setting(
        "SPOT_CONTROLLER_BACKOFF_MAX_S", 300.0, "Largest backoff of a pool", "s"
    )
    error_retry_s: float = _setting(
        "SPOT_CONTROLLER_ERROR_RETRY_S",
        300.0,
        "Retry interval of an environment in ERROR (quota, authentication, invalid spec)",
        "s",
    )
    offerings_refresh_s: float = _setting(
        "SPOT_CONTROLLER_OFFERINGS_REFRESH_S",
        300.0,
        "How often the offering cache asks DescribeZoneInstanceConfigInfos for each zone an "
        "environment with a placement strategy uses (60 s at most for a capacity policy's zones)",
        "s",
    )
    lease_duration_s: float = _setting(
        "SPOT_CONTROLLER_LEASE_DURATION_S",
        15.0,
        "How long the controller lease lasts without renewal; a standby replica takes over "
        "after it",
        "s",
    )
    lease_renew_deadline_s: float = _setting(
        "SPOT_CONTROLLER_LEASE_RENEW_DEADLINE_S",
        10.0,
        "A leader that could not renew its lease for this long stops acting (before the lease "
        "expires)",
        "s",
    )
    lease_retry_s: float = _setting(
        "SPOT_CONTROLLER_LEASE_RETRY_S",
        2.0,
        "How often the lease is renewed by the leader and tried by a standby",
        "s",
    )
    heartbeat_interval_s: float = _setting(
        "SPOT_CONTROLLER_HEARTBEAT_INTERVAL_S", 60.0, "Interval of the heartbeat log line", "s"
    )
    shutdown_deadline_s: float = _setting(
        "SPOT_CONTROLLER_SHUTDOWN_DEADLINE_S",
        20.0,
        "Hard deadline for a graceful shutdown after SIGTERM/SIGINT",
        "s",
    )
    migrate_on_start: bool = _setting(
        "SPOT_CONTROLLER_MIGRATE_ON_START",
        True,
        "Apply database migrations when the daemon starts",
    )
    http_addr: str = _setting(
        "SPOT_CONTROLLER_HTTP_ADDR",
        "",
        "host:port of the health and metrics listener; empty means off",
    )
    console_password_hash: Secret = _setting(
        "SPOT_CONTROLLER_CONSOLE_PASSWORD_HASH",
        Secret(""),
        "argon2 or bcrypt hash of the web console's password (`spot-controller console "
        "hash-password`); the console under /console/ of SPOT_CONTROLLER_HTTP_ADDR is off "
        "unless this or the read-only hash is set",
    )
    console_readonly_password_hash: Secret = _setting(
        "SPOT_CONTROLLER_CONSOLE_READONLY_PASSWORD_HASH",
        Secret(""),
        "argon2 or bcrypt hash of a read-only console password: sees everything, changes nothing",
    )
    console_session_s: float = _setting(
        "SPOT_CONTROLLER_CONSOLE_SESSION_S",
        28800.0,
        "A console session expires this long after its login",
        "s",
    )
    api_addr: str = _setting(
        "SPOT_CONTROLLER_API_ADDR",
        "",
        "host:port of the BatchCompute-compatible API (served by the daemon and by "
        "`spot-controller api serve`); empty means off",
    )
    api_master_key: Secret = _setting(
        "SPOT_CONTROLLER_API_MASTER_KEY",
        Secret(""),
        "Key (at least 32 characters) that encrypts the API keys' secrets in the database; "
        "needed by `api-key create` and the API (never logged)",
    )
    api_tls_cert: str = _setting(
        "SPOT_CONTROLLER_API_TLS_CERT",
        "",
        "PEM certificate (chain) file: the API is served over https (with "
        "SPOT_CONTROLLER_API_TLS_KEY); empty: plain http, put it behind a TLS proxy",
    )
    api_tls_key: str = _setting(
        "SPOT_CONTROLLER_API_TLS_KEY", "", "PEM private key file of SPOT_CONTROLLER_API_TLS_CERT"
    )
    api_rate_limit: float = _setting(
        "SPOT_CONTROLLER_API_RATE_LIMIT",
        20.0,
        "Calls per second each API key may make (a burst of one second's calls); past it the "
        "API answers RequestLimitExceeded",
        "calls/s",
    )
    log_format: str = _setting(
        "SPOT_CONTROLLER_LOG_FORMAT",
        "auto",
        "auto (JSON when stdout is not a terminal, console when it is), json or console",
    )
    log_level: str = _setting("SPOT_CONTROLLER_LOG_LEVEL", "info", "debug, info, warning or error")
    notify_short_after_s: float = _setting(
        "SPOT_CONTROLLER_NOTIFY_SHORT_AFTER_S",
        600.0,
        "An environment running fewer instances than desired for this long sends "
        "COMPUTE_ENV_SHORT (once, until it is back at desired)",
        "s",
    )
    notify_poll_interval_s: float = _setting(
        "SPOT_CONTROLLER_NOTIFY_POLL_INTERVAL_S",
        1.0,
        "How often the notification sender looks for new events in the outbox",
        "s",
    )
    notify_timeout_s: float = _setting(
        "SPOT_CONTROLLER_NOTIFY_TIMEOUT_S", 10.0, "Timeout of one notification delivery", "s"
    )
    notify_backoff_base_s: float = _setting(
        "SPOT_CONTROLLER_NOTIFY_BACKOFF_BASE_S",
        1.0,
        "First wait before a failed notification is sent again",
        "s",
    )
    notify_backoff_max_s: float = _setting(
        "SPOT_CONTROLLER_NOTIFY_BACKOFF_MAX_S",
        60.0,
        "Largest wait between attempts at a notification target that keeps failing",
        "s",
    )
    notify_queue_max: int = _setting(
        "SPOT_CONTROLLER_NOTIFY_QUEUE_MAX",
        10000,
        "Events kept per notification target; beyond it the oldest are dropped (counted)",
        "events",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``).

        Raises :class:`ConfigError` naming the variable and the rule for a malformed value.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = [
            f.name
            for f in dataclasses.fields(self)
            if f.type in ("float", "int") and f.name not in ("cvm_max_attempts", "probe_interval_s")
        ]
        for name in positive:
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{_env_of(name)}: must be a finite number greater than 0")
        if not math.isfinite(self.probe_interval_s) or self.probe_interval_s < 0:
            raise ConfigError(f"{_env_of('probe_interval_s')}: must be a finite number, 0 or more")
        if self.cvm_max_attempts < 1:
            raise ConfigError(f"{_env_of('cvm_max_attempts')}: must be at least 1")
        if not 1 <= self.launch_batch_max <= 500:
            raise ConfigError(f"{_env_of('launch_batch_max')}: must be between 1 and 500")
        if not self.lease_retry_s < self.lease_renew_deadline_s < self.lease_duration_s:
            raise ConfigError(
                "SPOT_CONTROLLER_LEASE_RETRY_S < SPOT_CONTROLLER_LEASE_RENEW_DEADLINE_S < "
                "SPOT_CONTROLLER_LEASE_DURATION_S must hold"
            )
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"{_env_of('log_format')}: must be auto, json or console")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{_env_of('log_level')}: must be debug, info, warning or error")
        self._validate_region()
        if not self.cluster or len(self.cluster) > 63:
            raise ConfigError(f"{_env_of('cluster')}: must be 1 to 63 characters")
        if not self.cvm_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{_env_of('cvm_endpoint')}: must start with http:// or https://")
        if self.http_addr:
            host, sep, port = self.http_addr.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"{_env_of('http_addr')}: must be host:port, e.g. 127.0.0.1:8080")
        self._validate_api()

    def _validate_api(self) -> None:
        if self.api_addr:
            host, sep, port = self.api_addr.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ConfigError(f"{_env_of('api_addr')}: must be host:port, e.g. 127.0.0.1:9001")
        if self.api_master_key and len(self.api_master_key.reveal()) < MIN_MASTER_KEY_LENGTH:
            raise ConfigError(
                f"{_env_of('api_master_key')}: must be at least {MIN_MASTER_KEY_LENGTH} "
                "characters (e.g. the output of `openssl rand -base64 32`)"
            )
        if bool(self.api_tls_cert) != bool(self.api_tls_key):
            raise ConfigError(
                f"{_env_of('api_tls_cert')} and {_env_of('api_tls_key')} must be set together"
            )
        for name in ("api_tls_cert", "api_tls_key"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise ConfigError(f"{_env_of(name)}: no such file: {path}")

        for name in ("console_password_hash", "console_readonly_password_hash"):
            value = getattr(self, name).reveal()
            if value and not PASSWORD_HASH_RE.match(value):
                raise ConfigError(
                    f"{_env_of(name)}: must be an argon2 ($argon2id$...) or bcrypt ($2b$...) "
                    "hash, as `spot-controller console hash-password` prints"
                )

    def _validate_region(self) -> None:
        for extra in self.extra_regions:
            if not REGION_NAME_RE.fullmatch(extra):
                raise ConfigError(
                    f"{_env_of('extra_regions')}: {extra!r} is not a region name "
                    "(lowercase words joined by '-', e.g. ap-newcity)"
                )
        if self.region in known_region_names() or self.region in self.extra_regions:
            return
        if is_known_region(region_of_zone(self.region)):
            raise ConfigError(
                f"{_env_of('region')}: {self.region!r} is a zone; its region is "
                f"{region_of_zone(self.region)!r}"
            )
        raise ConfigError(
            f"{_env_of('region')}: {self.region!r} is not a Tencent Cloud region; known regions: "
            f"{', '.join(known_region_names())} (for a region newer than this list, add it to "
            f"{_env_of('extra_regions')})"
        )

    def describe(self) -> list[dict[str, str]]:
        """Every setting with its variable, current value (secrets masked), unit and meaning."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                shown = ",".join(f"{k}={v:g}" for k, v in value.items())
            elif isinstance(value, tuple):
                shown = ",".join(value)
            elif f.name == "database_url":
                shown = mask_url_password(value)
            else:
                shown = str(value)
            rows.append(
                {
                    "env": f.metadata["env"],
                    "value": shown,
                    "unit": f.metadata["unit"],
                    "doc": f.metadata["doc"],
                }
            )
        return rows


def _env_of(name: str) -> str:
    return str(Settings.__dataclass_fields__[name].metadata["env"])


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    env = f.metadata["env"]
    kind = f.type
    try:
        if kind == "Secret":
            return Secret(raw)
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "Mapping[str, float]":
            return parse_rate_limits(raw)
        if kind == "tuple[str, ...]":
            return tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    except ValueError:
        expected = {
            "float": "a number",
            "int": "a whole number",
            "bool": "true or false",
            "Mapping[str, float]": "Action=rate pairs separated by commas",
        }[str(kind)]
        raise ConfigError(f"{env}: expected {expected}, got {raw!r}") from None
    return raw.strip()


def parse_rate_limits(raw: str) -> dict[str, float]:
    """``RunInstances=10,DescribeInstances=40`` on top of Tencent's defaults."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for part in raw.split(","):
        if not part.strip():
            continue
        action, sep, rate = part.partition("=")
        if not sep or not action.strip():
            raise ValueError(part)
        value = float(rate)
        if value <= 0:
            raise ValueError(part)
        limits[action.strip()] = value
    return limits
