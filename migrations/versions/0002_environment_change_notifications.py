"""Environment change notifications: NOTIFY on a user's change to compute_environments.

On PostgreSQL a trigger sends ``pg_notify('spot_controller_environments', <env id>)`` when a
row of compute_environments is inserted, deleted, or updated in a column other than the
controller's status columns, and ``pg_notify('spot_controller_environments', '')`` on
TRUNCATE. The daemon LISTENs (controller.store.notify) to react within milliseconds instead of
at its next poll. The controller's own status writes, made on every pass, do not notify.

An UPDATE is compared as ``to_jsonb(row) - <status columns>``, so a user column added by a
later migration notifies without the trigger being changed; a new *status* column, however,
must be added to STATUS_COLUMNS below by a migration that replaces the function.

On SQLite this migration does nothing: the daemon polls.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: CHANNEL must equal controller.store.notify.ENVIRONMENT_CHANGES_CHANNEL, and
# STATUS_COLUMNS controller.store.store.STATUS_COLUMNS (the columns the controller writes).
CHANNEL = "spot_controller_environments"
STATUS_COLUMNS = (
    "status",
    "status_reason",
    "running_count",
    "pending_count",
    "launching_count",
    "next_attempt_at",
    "last_reconciled_at",
)

FUNCTION = "spot_controller_notify_environment_change"
ROW_TRIGGER = "compute_environments_notify_change"
TRUNCATE_TRIGGER = "compute_environments_notify_truncate"


def _function_sql() -> str:
    status = "ARRAY[" + ", ".join(f"'{c}'" for c in STATUS_COLUMNS) + "]::text[]"
    return f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('{CHANNEL}', '');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('{CHANNEL}', NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', OLD.id);
    ELSIF (to_jsonb(OLD) - {status}) IS DISTINCT FROM (to_jsonb(NEW) - {status}) THEN
        -- An UPDATE that changed a user column (the controller's status writes do not).
        PERFORM pg_notify('{CHANNEL}', NEW.id);
        IF OLD.id IS DISTINCT FROM NEW.id THEN
            PERFORM pg_notify('{CHANNEL}', OLD.id);
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_function_sql())
    op.execute(
        f"CREATE TRIGGER {ROW_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON compute_environments "
        f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
    )
    op.execute(
        f"CREATE TRIGGER {TRUNCATE_TRIGGER} AFTER TRUNCATE ON compute_environments "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRUNCATE_TRIGGER} ON compute_environments")
    op.execute(f"DROP TRIGGER IF EXISTS {ROW_TRIGGER} ON compute_environments")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
