"""Placement policy: an allocation strategy, zone balance, a cap per pool, attribute-based types.

Every new column has a default that keeps today's behaviour (the user's priority order, no
spread, no cap, the named types only). The ranges SQL can state are named check constraints.
On SQLite the table is rebuilt to add the constraints, which drops its triggers: the revision
triggers of 0003 are created again here, watching the new user columns too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies (a migration must not change when the code does).
CHECKS = {
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
NEW_USER_COLUMNS = (
    "allocation_strategy",
    "zone_balance",
    "max_pool_share",
    "instance_cpu",
    "instance_memory",
    "instance_families",
)
OLD_WATCHED = (
    "id",
    "name",
    "zone",
    "instance_type",
    "image_id",
    "max_price",
    "desired_count",
    "fallback_instance_types",
    "fallback_zones",
    "instance_name",
    "security_group_ids",
    "vpc_id",
    "subnet_id",
    "key_ids",
    "user_data",
    "project_id",
    "tags",
    "created_at",
    "on_demand_base_count",
    "on_demand_percentage",
    "compensate_with_on_demand",
    "compensate_after_s",
    "disruption_budget",
    "max_hourly_spend",
)
BUMP = "UPDATE environment_revision SET revision = revision + 1 WHERE id = 1"
PG_FUNCTION = "spot_controller_bump_environment_revision"
PG_TRIGGER = "compute_environments_bump_revision"


def _sqlite_triggers(watched: Sequence[str]) -> dict[str, str]:
    return {
        "compute_environments_revision_insert": "AFTER INSERT",
        "compute_environments_revision_delete": "AFTER DELETE",
        "compute_environments_revision_update": f"AFTER UPDATE OF {', '.join(watched)}",
    }


def _watch(watched: Sequence[str]) -> None:
    """(Re)create the revision triggers of 0003 over ``watched`` columns."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON compute_environments")
        op.execute(
            f"CREATE TRIGGER {PG_TRIGGER} AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF "
            f"{', '.join(watched)} ON compute_environments "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
        )
        return
    for name, when in _sqlite_triggers(watched).items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(
            f"CREATE TRIGGER {name} {when} ON compute_environments FOR EACH ROW BEGIN {BUMP}; END"
        )


def upgrade() -> None:
    with op.batch_alter_table("compute_environments") as batch:
        batch.add_column(
            sa.Column(
                "allocation_strategy", sa.String(32), nullable=False, server_default="PRIORITY"
            )
        )
        batch.add_column(
            sa.Column("zone_balance", sa.String(16), nullable=False, server_default="PRIORITY")
        )
        batch.add_column(
            sa.Column("max_pool_share", sa.Integer, nullable=False, server_default="100")
        )
        batch.add_column(sa.Column("instance_cpu", sa.Integer, nullable=True))
        batch.add_column(sa.Column("instance_memory", sa.Integer, nullable=True))
        batch.add_column(sa.Column("instance_families", sa.Text, nullable=False, server_default=""))
        for name, text in CHECKS.items():
            batch.create_check_constraint(op.f(f"ck_compute_environments_{name}"), text)
    _watch(OLD_WATCHED + NEW_USER_COLUMNS)


def downgrade() -> None:
    _watch(OLD_WATCHED)  # first: PostgreSQL's trigger depends on the columns it watches
    with op.batch_alter_table("compute_environments") as batch:
        for name in CHECKS:
            batch.drop_constraint(op.f(f"ck_compute_environments_{name}"), type_="check")
        for column in reversed(NEW_USER_COLUMNS):
            batch.drop_column(column)
    if op.get_bind().dialect.name != "postgresql":
        _watch(OLD_WATCHED)  # the rebuilt SQLite table lost its triggers
