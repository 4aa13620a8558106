"""An app serving a bundle built from a small fixture, driven over ASGI with its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings
from tests.conftest import write_movielens_csv
from training.build import build
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


@pytest.fixture(scope="session")
async def client(artifacts: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(artifacts_dir=artifacts))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        yield http
