"""Environment revision: a counter that every user change to compute_environments bumps.

The daemon reads one integer each pass and reads the environment rows again only when it
moved (and at least every resync interval): at 10,000 environments, reading every row every
second was most of an idle pass. Triggers bump it on INSERT, DELETE, TRUNCATE (PostgreSQL)
and an UPDATE that sets any column other than the controller's status columns, so the
controller's own status writes leave it alone. Both backends; statement-level on PostgreSQL.

A user column added by a later migration must be added to the UPDATE OF list by that
migration (as must a new status column be left out of it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "environment_revision"
# Frozen copy: every column of compute_environments at this revision except the status
# columns (controller.store.store.STATUS_COLUMNS), which only the controller writes.
WATCHED_COLUMNS = (
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
BUMP = f"UPDATE {TABLE} SET revision = revision + 1 WHERE id = 1"
PG_FUNCTION = "spot_controller_bump_environment_revision"
PG_TRIGGER = "compute_environments_bump_revision"
SQLITE_TRIGGERS = {
    "compute_environments_revision_insert": "AFTER INSERT",
    "compute_environments_revision_delete": "AFTER DELETE",
    "compute_environments_revision_update": f"AFTER UPDATE OF {', '.join(WATCHED_COLUMNS)}",
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_environment_revision_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_revision")),
    )
    op.execute(f"INSERT INTO {TABLE} (id, revision) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {BUMP}; RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {PG_TRIGGER} AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF "
            f"{', '.join(WATCHED_COLUMNS)} ON compute_environments "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
        )
    else:
        for name, when in SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} ON compute_environments "
                f"FOR EACH ROW BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON compute_environments")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table(TABLE)
