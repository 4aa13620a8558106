"""An app serving a bundle built from a small fixture, driven over ASGI with its lifespan."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.services.catalog import Catalog
from app.services.recommender import Recommender
from app.settings import Settings
from tests.conftest import write_movielens_csv
from training.build import build
from training.bundle import read_bundle
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.models.als import ALSConfig


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    config = BuildConfig(
        als=ALSConfig(factors=8, iterations=5, regularization=1.0, alpha=5.0),
        tune=TuneConfig(enabled="off"),
        similar_min_ratings=1,
    )
    build(load_dataset(write_movielens_csv(root / "ml-mini")), root / "artifacts", config)
    return root / "artifacts"


@pytest.fixture(autouse=True)
def _own_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app a test makes without naming a database gets a new, migrated one of its own,
    never the working copy's data/cinerec.db (an app refuses a database left unmigrated)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/default.db")
    monkeypatch.setenv("MIGRATE_ON_START", "true")


@pytest.fixture
def recommender(artifacts: Path) -> Recommender:
    """A fresh recommender over the served bundle, with nothing cached yet."""
    bundle = read_bundle(artifacts)
    return Recommender(bundle, Catalog(bundle))


@pytest.fixture(scope="session")
async def client(artifacts: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app most API tests use; its visitors are answered by a visitor process."""
    database_url = f"sqlite+aiosqlite:///{artifacts.parent}/feedback.db"
    settings = Settings(
        artifacts_dir=artifacts, database_url=database_url, migrate_on_start=True, visitor_process=True
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        assert await app.state.services.process.ready()
        yield http


POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh database on the real PostgreSQL server, dropped afterwards."""
    name = f"cinerec_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, SQLAlchemyError) as exc:
        await admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is needed for these tests: {exc}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@asynccontextmanager
async def serving(
    artifacts: Path, database_url: str, feedback_cache_seconds: float = 0.0
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        artifacts_dir=artifacts,
        database_url=database_url,
        migrate_on_start=True,
        feedback_cache_seconds=feedback_cache_seconds,
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        yield http


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def feedback_client(
    request: pytest.FixtureRequest, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its feedback database on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        async with serving(
            artifacts, f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fb')}/feedback.db"
        ) as http:
            yield http
    else:
        async with postgres_database() as url, serving(artifacts, url) as http:
            yield http
