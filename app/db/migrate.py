"""Apply the Alembic migrations programmatically (start-up, tests), and tell at start-up
whether the database holds the schema this code writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[2]
# A database host that drops packets would hold start-up for the driver's whole connect timeout.
CHECK_SECONDS = 10
HOW = "run `make migrate` (alembic upgrade head) or set MIGRATE_ON_START=true"


def _config(database_url: str | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema (blocking; run in a thread)."""
    command.upgrade(_config(database_url), "head")


async def schema_behind(engine: AsyncEngine) -> str | None:
    """Why the database lacks the schema this code writes (no tables yet, or an older
    revision of them), or None: it has it, it is newer than this code, or it cannot be reached
    now (then writes answer 503 until it is back, and reads keep answering from the bundle)."""
    try:
        async with asyncio.timeout(CHECK_SECONDS), engine.connect() as connection:
            current = await connection.run_sync(_current_revision)
    except (SQLAlchemyError, OSError):  # TimeoutError among them
        return None
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    where = engine.url.render_as_string(hide_password=True)
    if current == head:
        return None
    if current is None:
        return f"the database at {where} has not been migrated: {HOW}"
    if current in {revision.revision for revision in script.walk_revisions()}:
        return f"the database at {where} is at migration {current}, this code needs {head}: {HOW}"
    return None  # a migration newer than this code's: its tables are a superset


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
