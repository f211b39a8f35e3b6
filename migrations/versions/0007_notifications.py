"""Notifications: targets (webhook, WeCom and DingTalk robots) and an outbox.

The outbox holds one row per event and target, written in the same transaction as the record
that caused it: the engine writes its rows itself; an environment's creation and deletion are
the user's own INSERT and DELETE, so triggers write those (per row, both backends), matching
the targets' filters with the rule of ``controller.core.notices.wants``. A later migration that
rebuilds compute_environments on SQLite (batch mode) drops triggers and must create these
again (``tests/store/test_outbox.py`` checks they exist at head). A PostgreSQL TRUNCATE
announces nothing.

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_FUNCTION = "spot_controller_outbox_environment"
PG_TRIGGER = "compute_environments_outbox"
SQLITE_TRIGGERS = {
    "compute_environments_outbox_insert": ("AFTER INSERT", "NEW", "COMPUTE_ENV_CREATED"),
    "compute_environments_outbox_delete": ("AFTER DELETE", "OLD", "COMPUTE_ENV_DELETED"),
}
COLUMNS = "target, event_id, event, env_id, payload, created_at, attempts"


def _sqlite_insert(row: str, kind: str) -> str:
    payload = (
        f"json_object('env_name', {row}.name, 'zone', {row}.zone, "
        f"'instance_type', {row}.instance_type, 'desired_count', {row}.desired_count)"
    )
    return (
        f"INSERT INTO outbox ({COLUMNS}) "
        f"SELECT n.name, 'evt-' || lower(hex(randomblob(16))), '{kind}', {row}.id, {payload}, "
        "strftime('%Y-%m-%d %H:%M:%f', 'now'), 0 FROM notifications n "
        f"WHERE (n.events = '' OR instr(',' || n.events || ',', ',{kind},') > 0) "
        f"AND (n.env_ids = '' OR instr(',' || n.env_ids || ',', ',' || {row}.id || ',') > 0)"
    )


PG_BODY = f"""
DECLARE env record; event_name text;
BEGIN
  IF TG_OP = 'INSERT' THEN env := NEW; event_name := 'COMPUTE_ENV_CREATED';
  ELSE env := OLD; event_name := 'COMPUTE_ENV_DELETED'; END IF;
  INSERT INTO outbox ({COLUMNS})
  SELECT n.name, 'evt-' || md5(random()::text || clock_timestamp()::text || n.name), event_name,
         env.id,
         json_build_object('env_name', env.name, 'zone', env.zone,
                           'instance_type', env.instance_type,
                           'desired_count', env.desired_count)::text,
         clock_timestamp(), 0
  FROM notifications n
  WHERE (n.events = '' OR position(',' || event_name || ',' in ',' || n.events || ',') > 0)
    AND (n.env_ids = '' OR position(',' || env.id || ',' in ',' || n.env_ids || ',') > 0);
  RETURN NULL;
END
"""


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=True),
        sa.Column("events", sa.Text, nullable=False, server_default=""),
        sa.Column("env_ids", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dropped_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('webhook', 'wecom', 'dingtalk')", name=op.f("ck_notifications_kind_known")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notifications")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("env_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("target", "event_id", name=op.f("uq_outbox_target_event_id")),
    )
    op.create_index("ix_outbox_target_seq", "outbox", ["target", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $${PG_BODY}$$"
        )
        op.execute(
            f"CREATE TRIGGER {PG_TRIGGER} AFTER INSERT OR DELETE ON compute_environments "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
        )
    else:
        for name, (when, row, kind) in SQLITE_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {when} ON compute_environments FOR EACH ROW "
                f"BEGIN {_sqlite_insert(row, kind)}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {PG_TRIGGER} ON compute_environments")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_outbox_target_seq", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("notifications")
