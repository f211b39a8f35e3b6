"""The BatchCompute-compatible API: API keys (secrets encrypted), the audit log, ClientTokens
of CreateComputeEnv, and three user columns of compute_environments: ``description``
(EnvDescription), ``terminate_node_ids`` (the nodes TerminateComputeNodes asked to end
first when the lowered desired count is scaled in) and ``launch_options`` (RunInstances'
SystemDisk, DataDisks, InternetAccessible and EnhancedService, as one JSON object).

The new columns are added in place (no table rebuild on SQLite, so its triggers stay) and the
revision triggers are created again over every user column, as 0003 asks of a later
migration.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy (a migration must not change when the code does): the columns the controller
# writes, which the revision triggers do not watch. Every other column is a user column, read
# from the table itself, so that this migration watches whatever user columns the migrations
# before it added, in whatever order they are chained.
STATUS_COLUMNS = (
    "status",
    "status_reason",
    "running_count",
    "pending_count",
    "launching_count",
    "next_attempt_at",
    "last_reconciled_at",
)
NEW_USER_COLUMNS = ("description", "terminate_node_ids", "launch_options")
BUMP = "UPDATE environment_revision SET revision = revision + 1 WHERE id = 1"
PG_FUNCTION = "spot_controller_bump_environment_revision"
PG_TRIGGER = "compute_environments_bump_revision"


Timestamp = sa.DateTime(timezone=True)


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
    triggers = {
        "compute_environments_revision_insert": "AFTER INSERT",
        "compute_environments_revision_delete": "AFTER DELETE",
        "compute_environments_revision_update": f"AFTER UPDATE OF {', '.join(watched)}",
    }
    for name, when in triggers.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(
            f"CREATE TRIGGER {name} {when} ON compute_environments FOR EACH ROW BEGIN {BUMP}; END"
        )


def _user_columns() -> tuple[str, ...]:
    columns = sa.inspect(op.get_bind()).get_columns("compute_environments")
    return tuple(c["name"] for c in columns if c["name"] not in STATUS_COLUMNS)


def upgrade() -> None:
    for column in NEW_USER_COLUMNS:
        op.add_column(
            "compute_environments",
            sa.Column(column, sa.Text, nullable=False, server_default=""),
        )
    _watch(_user_columns())
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("secret_id", sa.String(64), nullable=False),
        sa.Column("secret_key_encrypted", sa.Text, nullable=False),
        sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_id", name=op.f("uq_api_keys_secret_id")),
    )
    op.create_table(
        "api_audit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("result", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_audit")),
    )
    op.create_index("ix_api_audit_at", "api_audit", ["at"])
    op.create_table(
        "api_client_tokens",
        sa.Column("client_token", sa.String(64), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("client_token", name=op.f("pk_api_client_tokens")),
    )


def downgrade() -> None:
    op.drop_table("api_client_tokens")
    op.drop_index("ix_api_audit_at", table_name="api_audit")
    op.drop_table("api_audit")
    op.drop_table("api_keys")
    older = tuple(c for c in _user_columns() if c not in NEW_USER_COLUMNS)
    _watch(older)  # first: PostgreSQL's trigger depends on the columns it watches
    with op.batch_alter_table("compute_environments") as batch:
        for column in reversed(NEW_USER_COLUMNS):
            batch.drop_column(column)
    if op.get_bind().dialect.name != "postgresql":
        _watch(older)  # the rebuilt SQLite table lost its triggers
