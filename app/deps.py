"""Typed dependencies handing out what the lifespan loaded."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request

from app.db.repository import FeedbackRepository
from app.errors import ModelNotReady
from app.metrics import Metrics
from app.services.catalog import Catalog
from app.services.feedback import FeedbackService, FeedbackUsers
from app.services.home import HomeConfig
from app.services.rankings import Rankings
from app.services.recommender import Recommender
from training.bundle import Bundle

RENDERED_ANSWERS = 4096  # answers that depend on the bundle alone, kept rendered


@dataclass(frozen=True)
class Services:
    bundle: Bundle
    catalog: Catalog
    recommender: Recommender
    home: HomeConfig
    feedback: FeedbackService
    rankings: Rankings
    # Rendered answers that depend on the bundle alone (charts, similar movies), by request;
    # a reload makes new Services, so they never outlive their bundle.
    rendered: LRUCache[Hashable, bytes] = field(default_factory=lambda: LRUCache(RENDERED_ANSWERS))

    @classmethod
    def create(
        cls,
        bundle: Bundle,
        home: HomeConfig,
        repository: FeedbackRepository,
        metrics: Metrics,
        cache_seconds: float = 0.0,
        feedback_users: FeedbackUsers | None = None,
    ) -> Services:
        catalog = Catalog(bundle)
        recommender = Recommender(bundle, catalog, metrics, cache_seconds=cache_seconds)
        feedback = FeedbackService(
            repository,
            catalog,
            recommender,
            recommender.scale,
            metrics,
            cache_seconds=cache_seconds,
            users=feedback_users,
        )
        return cls(bundle, catalog, recommender, home, feedback, Rankings(recommender, feedback))


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop on every request.
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ModelNotReady("no model bundle is loaded")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
