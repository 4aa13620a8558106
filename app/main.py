"""The composition root: create_app() and the lifespan that loads the bundle."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# numpy scoring in the request thread pool must not fan out into BLAS threads of its own.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from alembic.util import CommandError
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api import admin, health, movies, ratings, recommendations, users
from app.db import migrate
from app.db.repository import FeedbackRepository
from app.db.session import create_engine, session_factory
from app.deps import Services, freeze_heap
from app.errors import install_error_handlers
from app.logs import configure_logging
from app.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from app.openapi import complete as complete_errors
from app.services.feedback import FeedbackUsers
from app.services.home import HomeConfig
from app.settings import Settings
from training.bundle import BundleError, read_bundle

log = logging.getLogger("cinerec")

DESCRIPTION = """Movie recommendations from an implicit-ALS model (blended with EASE where the catalog
allows) and star-rating prediction, served from a verified artifact bundle built by
`python -m training build`. Ids are the dataset's own integer ids."""


class StartupError(RuntimeError):
    """The service cannot start: no valid bundle or home page config, a database that answers
    without this code's schema, or migrations asked for that cannot run."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format == "json")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        path = settings.bundle_path
        try:
            bundle = await run_in_threadpool(read_bundle, path)
            home = HomeConfig.load(settings.home_config)
            if settings.migrate_on_start:
                await run_in_threadpool(migrate.upgrade, settings.database_url)
        except (BundleError, OSError, ValidationError, SQLAlchemyError, CommandError) as exc:
            # One clear line in the log, then refuse to start.
            log.error("cannot start: %s", exc)
            raise StartupError(f"cinerec: cannot start: {exc}") from None
        engine = create_engine(settings.database_url)
        if behind := await migrate.schema_behind(engine):
            # Started anyway, every write would answer 503 as if the database were down.
            await engine.dispose()
            log.error("cannot start: %s", behind)
            raise StartupError(f"cinerec: cannot start: {behind}")
        repository = FeedbackRepository(session_factory(engine))
        # Who has feedback stored, so that reads for everyone else skip the database; only
        # when this process's cache is exact (FEEDBACK_CACHE_SECONDS=0, see app.settings).
        users = await FeedbackUsers.load(repository) if settings.feedback_cache_seconds == 0 else None
        # No local name holds the services: a reload's swap must leave them to be freed.
        app.state.services = await run_in_threadpool(
            Services.create,
            bundle,
            home,
            repository,
            metrics,
            settings.feedback_cache_seconds,
            users,
            settings.rendered_cache_bytes,
            settings.visitor_process,
        )
        app.state.services.start()
        freeze_heap()
        metrics.serving(bundle.version, bundle.manifest["dataset"]["name"])
        log.info("serving bundle %s (%s)", bundle.version, bundle.manifest["dataset"]["name"])
        if not settings.api_key_list:
            log.warning("API_KEYS is not set: rating writes and /admin endpoints are open to anyone")
        yield
        services, app.state.services = app.state.services, None
        await services.close()
        await engine.dispose()

    app = FastAPIOffline(
        title="cinerec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    app.state.settings = settings
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    install_error_handlers(app)
    routers = (
        health.router,
        movies.router,
        users.router,
        recommendations.router,
        ratings.router,
        admin.router,
    )
    # The path operations go into the app's own route list, not `include_router`: since
    # FastAPI 0.137 an included router stays a node that each request walks (and matches
    # again inside), ~40-60 us a request in process for the later routers (README, Speed).
    # They go in front of the docs, schema and /metrics routes: a request is matched against
    # the routes in order, at ~2.5 us a route on this host, and the API takes the traffic.
    app.router.routes[:0] = [route for router in routers for route in router.routes]
    fastapi_schema = app.openapi
    app.openapi = lambda: complete_errors(fastapi_schema())  # type: ignore[method-assign]
    return app


app = create_app()
