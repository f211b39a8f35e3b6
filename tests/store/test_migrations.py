"""Migrations: empty -> head, schema equals the models, down to base and up again."""

import pytest
import sqlalchemy as sa

from controller.store import migrate
from controller.store.database import create_engine


async def test_upgrade_check_downgrade_upgrade(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await migrate.is_at_head(engine)
        await migrate.check(engine)  # alembic check: models and migrated schema agree
        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "compute_environments" not in tables
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        await migrate.check(engine)
    finally:
        await engine.dispose()


async def test_constraints_have_names(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            checks = await conn.run_sync(
                lambda c: sa.inspect(c).get_check_constraints("compute_environments")
            )
            uniques = await conn.run_sync(
                lambda c: sa.inspect(c).get_unique_constraints("compute_environments")
            )
    finally:
        await engine.dispose()
    names = {c["name"] for c in checks}
    assert {
        "ck_compute_environments_desired_count_range",
        "ck_compute_environments_max_price_positive",
        "ck_compute_environments_name_not_empty",
    } <= names
    assert "uq_compute_environments_name" in {u["name"] for u in uniques}


@pytest.mark.parametrize("url", ["not a url", "mysql://x@localhost/db"])
def test_bad_database_urls_are_config_errors(url: str) -> None:
    from controller.errors import ConfigError

    with pytest.raises(ConfigError, match="SPOT_CONTROLLER_DATABASE_URL"):
        create_engine(url)
