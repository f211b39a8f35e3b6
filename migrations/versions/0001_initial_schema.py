"""Initial schema: compute environments, launches, compute nodes, activities.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)

# Frozen copies of the id defaults in controller.store.schema.RandomEnvId.
ENV_ID_DEFAULT = {
    "sqlite": "('env-' || lower(hex(randomblob(4))))",
    "postgresql": "('env-' || substr(md5(random()::text || clock_timestamp()::text), 1, 8))",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "compute_environments",
        sa.Column(
            "id", sa.String(32), server_default=sa.text(ENV_ID_DEFAULT[dialect]), nullable=False
        ),
        sa.Column("name", sa.String(240), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("max_price", sa.Numeric(12, 5), nullable=False),
        sa.Column("desired_count", sa.Integer(), nullable=False),
        sa.Column("fallback_instance_types", sa.Text(), server_default="", nullable=False),
        sa.Column("fallback_zones", sa.Text(), server_default="", nullable=False),
        sa.Column("instance_name", sa.String(128), nullable=True),
        sa.Column("security_group_ids", sa.Text(), server_default="", nullable=False),
        sa.Column("vpc_id", sa.String(64), nullable=True),
        sa.Column("subnet_id", sa.String(64), nullable=True),
        sa.Column("key_ids", sa.Text(), server_default="", nullable=False),
        sa.Column("user_data", sa.Text(), nullable=True),
        sa.Column("project_id", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tags", sa.Text(), server_default="{}", nullable=False),
        sa.Column(
            "created_at", Timestamp, server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column("status", sa.String(16), server_default="NEW", nullable=False),
        sa.Column("status_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("running_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pending_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("launching_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("last_reconciled_at", Timestamp, nullable=True),
        sa.CheckConstraint(
            "desired_count >= 0 AND desired_count <= 2000",
            name=op.f("ck_compute_environments_desired_count_range"),
        ),
        sa.CheckConstraint(
            "max_price > 0", name=op.f("ck_compute_environments_max_price_positive")
        ),
        sa.CheckConstraint(
            "length(trim(name)) > 0", name=op.f("ck_compute_environments_name_not_empty")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_environments")),
        sa.UniqueConstraint("name", name=op.f("uq_compute_environments_name")),
    )
    op.create_table(
        "launches",
        sa.Column("client_token", sa.String(64), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(128), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("client_token", name=op.f("pk_launches")),
    )
    op.create_index("ix_launches_env_id", "launches", ["env_id"])
    op.create_index("ix_launches_state", "launches", ["state"])
    op.create_table(
        "compute_nodes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("launch_token", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("max_price", sa.String(32), server_default="", nullable=False),
        sa.Column("origin", sa.String(16), server_default="LAUNCHED", nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("launched_at", Timestamp, nullable=True),
        sa.Column("running_at", Timestamp, nullable=True),
        sa.Column("last_seen_at", Timestamp, nullable=True),
        sa.Column("cloud_state", sa.String(32), nullable=True),
        sa.Column("ended_at", Timestamp, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("end_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_nodes")),
    )
    op.create_index("ix_compute_nodes_env_id", "compute_nodes", ["env_id"])
    op.create_index("ix_compute_nodes_launch_token", "compute_nodes", ["launch_token"])
    op.create_index("ix_compute_nodes_state", "compute_nodes", ["state"])
    op.create_index("ix_compute_nodes_instance_id", "compute_nodes", ["instance_id"])
    op.create_index(
        "uq_compute_nodes_live_instance_id",
        "compute_nodes",
        ["instance_id"],
        unique=True,
        sqlite_where=sa.text("state != 'ENDED'"),
        postgresql_where=sa.text("state != 'ENDED'"),
    )
    op.create_table(
        "activities",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=True),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("activity_type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cause", sa.Text(), server_default="", nullable=False),
        sa.Column("state_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("start_time", Timestamp, nullable=False),
        sa.Column("end_time", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
    )
    op.create_index("ix_activities_env_id", "activities", ["env_id"])
    op.create_index("ix_activities_node_id", "activities", ["node_id"])
    op.create_table(
        "controller_leases",
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("renewed_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", name=op.f("pk_controller_leases")),
    )


def downgrade() -> None:
    op.drop_table("controller_leases")
    op.drop_table("activities")
    op.drop_table("compute_nodes")
    op.drop_table("launches")
    op.drop_table("compute_environments")
