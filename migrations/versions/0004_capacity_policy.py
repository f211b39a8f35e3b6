"""Capacity policy: an on-demand base and share, compensation, a disruption budget, a spend cap;
and each node's charge type, hourly price and role.

Every new column has a default that keeps today's behaviour (an all-spot, uncapped
environment; a spot node of unknown price). The ranges SQL can state are named check
constraints (the store names the field from the constraint's name). On SQLite the table is
rebuilt to add the constraints, which drops its triggers: the revision triggers of 0003 are
created again here, watching the new user columns too (as 0003 asks of a later migration).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies (a migration must not change when the code does).
CHECKS = {
    "on_demand_base_count_range": "on_demand_base_count >= 0 AND on_demand_base_count <= 2000",
    "on_demand_percentage_range": "on_demand_percentage >= 0 AND on_demand_percentage <= 100",
    "compensate_after_s_range": "compensate_after_s >= 0 AND compensate_after_s <= 86400",
    "disruption_budget_positive": "disruption_budget IS NULL OR disruption_budget >= 1",
    "max_hourly_spend_positive": "max_hourly_spend IS NULL OR max_hourly_spend > 0",
}
NEW_USER_COLUMNS = (
    "on_demand_base_count",
    "on_demand_percentage",
    "compensate_with_on_demand",
    "compensate_after_s",
    "disruption_budget",
    "max_hourly_spend",
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
            sa.Column("on_demand_base_count", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("on_demand_percentage", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column(
                "compensate_with_on_demand",
                sa.Boolean,
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.add_column(
            sa.Column("compensate_after_s", sa.Integer, nullable=False, server_default="60")
        )
        batch.add_column(sa.Column("disruption_budget", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_hourly_spend", sa.Numeric(12, 5), nullable=True))
        for name, text in CHECKS.items():
            batch.create_check_constraint(op.f(f"ck_compute_environments_{name}"), text)
    with op.batch_alter_table("compute_nodes") as batch:
        batch.add_column(
            sa.Column("charge_type", sa.String(32), nullable=False, server_default="SPOTPAID")
        )
        batch.add_column(sa.Column("hourly_price", sa.String(32), nullable=True))
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="spot"))
    _watch(OLD_WATCHED + NEW_USER_COLUMNS)


def downgrade() -> None:
    _watch(OLD_WATCHED)  # first: PostgreSQL's trigger depends on the columns it watches
    with op.batch_alter_table("compute_nodes") as batch:
        for column in ("role", "hourly_price", "charge_type"):
            batch.drop_column(column)
    with op.batch_alter_table("compute_environments") as batch:
        for name in CHECKS:
            batch.drop_constraint(op.f(f"ck_compute_environments_{name}"), type_="check")
        for column in reversed(NEW_USER_COLUMNS):
            batch.drop_column(column)
    if op.get_bind().dialect.name != "postgresql":
        _watch(OLD_WATCHED)  # the rebuilt SQLite table lost its triggers
