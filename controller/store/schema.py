"""Tables of the desired-state store.

Users write ``compute_environments`` rows (SQL or the CLI); the controller writes only its own
columns there (``status``, ``status_reason``, counts, times) with column-scoped UPDATEs, so a
user's change and a controller's status update never lose each other. History tables carry
``env_id`` without a foreign key: deleting an environment must not erase what happened to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from controller.ids import new_activity_id, new_env_id, new_node_id

MAX_DESIRED_COUNT = 2000  # BatchCompute's DesiredComputeNodeCount limit
MAX_NAME_LENGTH = 60

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class RandomEnvId(ColumnElement[str]):
    """Server-side default ``env-`` + 8 lowercase alphanumerics, so plain SQL inserts get an id."""

    type = sa.String()
    inherit_cache = True


@compiles(RandomEnvId, "sqlite")
def _env_id_sqlite(element: RandomEnvId, compiler: Any, **kw: Any) -> str:
    return "('env-' || lower(hex(randomblob(4))))"


@compiles(RandomEnvId, "postgresql")
def _env_id_postgresql(element: RandomEnvId, compiler: Any, **kw: Any) -> str:
    return "('env-' || substr(md5(random()::text || clock_timestamp()::text), 1, 8))"


class DbClock(ColumnElement[float]):
    """The database server's clock in unix seconds: one clock for every replica's lease."""

    type = sa.Float()
    inherit_cache = True


@compiles(DbClock, "sqlite")
def _clock_sqlite(element: DbClock, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(DbClock, "postgresql")
def _clock_postgresql(element: DbClock, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())"


def _now() -> datetime:
    return datetime.now(UTC)


# What SQL can check of the capacity policy, by name (the store turns a violation into the
# field's rule); controller.core.capacity checks the rest.
CAPACITY_CHECKS = {
    "on_demand_base_count_range": (
        f"on_demand_base_count >= 0 AND on_demand_base_count <= {MAX_DESIRED_COUNT}"
    ),
    "on_demand_percentage_range": "on_demand_percentage >= 0 AND on_demand_percentage <= 100",
    "compensate_after_s_range": "compensate_after_s >= 0 AND compensate_after_s <= 86400",
    "disruption_budget_positive": "disruption_budget IS NULL OR disruption_budget >= 1",
    "max_hourly_spend_positive": "max_hourly_spend IS NULL OR max_hourly_spend > 0",
}
CAPACITY_CONSTRAINTS = tuple(
    sa.CheckConstraint(text, name=name) for name, text in CAPACITY_CHECKS.items()
)

# The placement policy (migration 0005), checked by name like the capacity policy's.
PLACEMENT_CHECKS = {
    "allocation_strategy_known": (
        "allocation_strategy IN ('PRIORITY', 'COST_OPTIMIZED', 'CAPACITY_OPTIMIZED', "
        "'PRICE_CAPACITY_OPTIMIZED')"
    ),
    "zone_balance_known": "zone_balance IN ('PRIORITY', 'EQUALITY')",
    "max_pool_share_range": "max_pool_share >= 1 AND max_pool_share <= 100",
    "instance_cpu_range": "instance_cpu IS NULL OR (instance_cpu >= 1 AND instance_cpu <= 256)",
    "instance_memory_range": (
        "instance_memory IS NULL OR (instance_memory >= 1 AND instance_memory <= 4096)"
    ),
}
PLACEMENT_CONSTRAINTS = tuple(
    sa.CheckConstraint(text, name=name) for name, text in PLACEMENT_CHECKS.items()
)

compute_environments = sa.Table(
    "compute_environments",
    metadata,
    sa.Column(
        "id", sa.String(32), primary_key=True, default=new_env_id, server_default=RandomEnvId()
    ),
    # --- written by users ---
    sa.Column("name", sa.String(MAX_NAME_LENGTH * 4), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("instance_type", sa.String(64), nullable=False),
    sa.Column("image_id", sa.String(64), nullable=False),
    sa.Column("max_price", sa.Numeric(12, 5), nullable=False),
    sa.Column("desired_count", sa.Integer, nullable=False),
    sa.Column("fallback_instance_types", sa.Text, nullable=False, server_default=""),
    sa.Column("fallback_zones", sa.Text, nullable=False, server_default=""),
    sa.Column("instance_name", sa.String(128), nullable=True),
    sa.Column("security_group_ids", sa.Text, nullable=False, server_default=""),
    sa.Column("vpc_id", sa.String(64), nullable=True),
    sa.Column("subnet_id", sa.String(64), nullable=True),
    sa.Column("key_ids", sa.Text, nullable=False, server_default=""),
    sa.Column("user_data", sa.Text, nullable=True),
    sa.Column("project_id", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
    # the capacity policy (migration 0004): every default is an all-spot, uncapped environment
    sa.Column("on_demand_base_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("on_demand_percentage", sa.Integer, nullable=False, server_default="0"),
    sa.Column("compensate_with_on_demand", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("compensate_after_s", sa.Integer, nullable=False, server_default="60"),
    sa.Column("disruption_budget", sa.Integer, nullable=True),  # NULL: 10 % of desired
    sa.Column("max_hourly_spend", sa.Numeric(12, 5), nullable=True),  # NULL: no cap
    # the placement policy (migration 0005): every default is the user's priority order
    sa.Column("allocation_strategy", sa.String(32), nullable=False, server_default="PRIORITY"),
    sa.Column("zone_balance", sa.String(16), nullable=False, server_default="PRIORITY"),
    sa.Column("max_pool_share", sa.Integer, nullable=False, server_default="100"),
    sa.Column("instance_cpu", sa.Integer, nullable=True),  # NULL: types are named
    sa.Column("instance_memory", sa.Integer, nullable=True),
    sa.Column("instance_families", sa.Text, nullable=False, server_default=""),
    # migration 0006: BatchCompute's EnvDescription; the nodes a TerminateComputeNodes asked
    # to end first when the lowered desired count is scaled in (comma-separated node ids);
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("terminate_node_ids", sa.Text, nullable=False, server_default=""),
    # RunInstances' SystemDisk, DataDisks, InternetAccessible, EnhancedService as one JSON object
    sa.Column("launch_options", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "created_at",
        UTCDateTime,
        nullable=False,
        default=_now,
        server_default=sa.func.current_timestamp(),
    ),
    # --- written by the controller only ---
    sa.Column("status", sa.String(16), nullable=False, server_default="NEW"),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("running_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pending_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("launching_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_reconciled_at", UTCDateTime, nullable=True),
    sa.CheckConstraint(
        f"desired_count >= 0 AND desired_count <= {MAX_DESIRED_COUNT}", name="desired_count_range"
    ),
    sa.CheckConstraint("max_price > 0", name="max_price_positive"),
    sa.CheckConstraint("length(trim(name)) > 0", name="name_not_empty"),
    *CAPACITY_CONSTRAINTS,
    *PLACEMENT_CONSTRAINTS,
    sa.UniqueConstraint("name"),
)

# A launch is the durable intent of one RunInstances call: recorded with its ClientToken and
# exact request before the call, resolved with the instance ids (or the error) after.
launches = sa.Table(
    "launches",
    metadata,
    sa.Column("client_token", sa.String(64), primary_key=True),
    sa.Column("env_id", sa.String(32), nullable=False, index=True),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("instance_type", sa.String(64), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # JSON of the exact LaunchRequest
    sa.Column("state", sa.String(16), nullable=False),  # PENDING | SUCCEEDED | FAILED
    sa.Column("error_code", sa.String(128), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    # Which replica recorded the intent, under which lease epoch (fencing token).
    sa.Column("holder", sa.String(128), nullable=True),
    sa.Column("epoch", sa.Integer, nullable=True),
    sa.Index("ix_launches_state", "state"),
)

# One row per cluster: the replica that may act, until when (database clock), and the fencing
# token (epoch) every one of its writes is checked against.
# One row, bumped by triggers (migration 0003) on every user change to compute_environments:
# the daemon re-reads the environments only when it moved.
environment_revision = sa.Table(
    "environment_revision",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

controller_leases = sa.Table(
    "controller_leases",
    metadata,
    sa.Column("cluster", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # unix seconds, database clock
    sa.Column("renewed_at", sa.Float, nullable=False),
)

compute_nodes = sa.Table(
    "compute_nodes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True, default=new_node_id),
    sa.Column("env_id", sa.String(32), nullable=False, index=True),
    sa.Column("instance_id", sa.String(32), nullable=True),
    sa.Column("launch_token", sa.String(64), nullable=True, index=True),
    # SUBMITTED (intent, no instance yet) | CREATING (PENDING) | RUNNING | DELETING | ENDED
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("instance_type", sa.String(64), nullable=False),
    sa.Column("max_price", sa.String(32), nullable=False, server_default=""),
    sa.Column("origin", sa.String(16), nullable=False, server_default="LAUNCHED"),  # | ADOPTED
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("launched_at", UTCDateTime, nullable=True),
    sa.Column("running_at", UTCDateTime, nullable=True),
    sa.Column("last_seen_at", UTCDateTime, nullable=True),
    sa.Column("cloud_state", sa.String(32), nullable=True),  # last InstanceState observed
    sa.Column("ended_at", UTCDateTime, nullable=True),
    # interrupted | released | scale_in | env_deleted | launch_failed | launch_timeout | orphan
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("end_detail", sa.Text, nullable=True),
    # SPOTPAID | POSTPAID_BY_HOUR; the price it was bought at (CNY/h, NULL: not known); its
    # role in the capacity policy: base | on_demand | spot | compensation (migration 0004)
    sa.Column("charge_type", sa.String(32), nullable=False, server_default="SPOTPAID"),
    sa.Column("hourly_price", sa.String(32), nullable=True),
    sa.Column("role", sa.String(16), nullable=False, server_default="spot"),
    sa.Index("ix_compute_nodes_state", "state"),
    # One live record per instance; history may hold an ended record of the same instance
    # (an instance judged gone that came back is adopted anew).
    sa.Index(
        "uq_compute_nodes_live_instance_id",
        "instance_id",
        unique=True,
        sqlite_where=sa.text("state != 'ENDED'"),
        postgresql_where=sa.text("state != 'ENDED'"),
    ),
    sa.Index("ix_compute_nodes_instance_id", "instance_id"),
)

activities = sa.Table(
    "activities",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True, default=new_activity_id),
    sa.Column("env_id", sa.String(32), nullable=False, index=True),
    sa.Column("node_id", sa.String(32), nullable=True, index=True),
    sa.Column("instance_id", sa.String(32), nullable=True),
    sa.Column("activity_type", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # SUBMITTED|PROCESSING|SUCCEED|FAILED
    sa.Column("cause", sa.Text, nullable=False, server_default=""),
    sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("start_time", UTCDateTime, nullable=False, default=_now),
    sa.Column("end_time", UTCDateTime, nullable=True),
)

# The BatchCompute-compatible API (migration 0006). A key's secret is kept encrypted with
# SPOT_CONTROLLER_API_MASTER_KEY (TC3 needs the secret itself to check a signature).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("secret_id", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_key_encrypted", sa.Text, nullable=False),
    sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

# Every mutating API call: who, what, on which environment, and how it ended.
api_audit = sa.Table(
    "api_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, default=_now),
    sa.Column("key_name", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("env_id", sa.String(32), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("result", sa.String(128), nullable=False),  # OK or the error code
    sa.Index("ix_api_audit_at", "at"),
)

# CreateComputeEnv's ClientToken: the same token gives the same environment, once.
api_client_tokens = sa.Table(
    "api_client_tokens",
    metadata,
    sa.Column("client_token", sa.String(64), primary_key=True),
    sa.Column("env_id", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
)

# Notification targets (migration 0007). A user writes the target (CLI: `notify add`); the
# sender alone writes the delivery columns, with column-scoped UPDATEs.
NOTIFICATION_KINDS = ("webhook", "wecom", "dingtalk")
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret", sa.Text, nullable=True),  # webhook HMAC key; DingTalk's signing secret
    sa.Column("events", sa.Text, nullable=False, server_default=""),  # comma-separated; "": all
    sa.Column("env_ids", sa.Text, nullable=False, server_default=""),  # comma-separated; "": all
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    # --- written by the sender only ---
    sa.Column("delivered_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("dropped_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", UTCDateTime, nullable=True),
    sa.Column("last_delivered_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.CheckConstraint(
        "kind IN ({})".format(", ".join(f"'{k}'" for k in NOTIFICATION_KINDS)), name="kind_known"
    ),
)

# One row per event and target, written in the transaction of the record that caused it (the
# ledger's, the status writer's, or the user's own INSERT/DELETE of an environment, by trigger);
# deleted once delivered. ``seq`` orders each target's queue.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("event", sa.String(48), nullable=False),
    sa.Column("env_id", sa.String(32), nullable=False, server_default=""),
    sa.Column("payload", sa.Text, nullable=False),  # JSON of the notice's fields
    sa.Column("created_at", UTCDateTime, nullable=False, default=_now),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_outbox_target_seq", "target", "seq"),
    sa.UniqueConstraint("target", "event_id"),
)
