"""Typed dependencies handing out what the lifespan loaded."""

from __future__ import annotations

import gc
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request

from app.db.repository import FeedbackRepository
from app.errors import ModelNotReady
from app.metrics import Metrics
from app.services.catalog import Catalog, Filters
from app.services.concurrency import Batcher, through_thread_pool
from app.services.feedback import FeedbackService, FeedbackUsers
from app.services.home import HomeConfig
from app.services.rankings import Rankings
from app.services.recommender import Recommender
from app.services.visitor_process import VisitorProcess
from training.bundle import Bundle


def rendered_cache(budget: int) -> LRUCache[Hashable, bytes]:
    """An LRU of rendered answers whose sizes (bytes) add up to at most `budget`."""
    return LRUCache(maxsize=budget, getsizeof=len)


@dataclass(frozen=True)
class Services:
    bundle: Bundle
    catalog: Catalog
    recommender: Recommender
    home: HomeConfig
    feedback: FeedbackService
    rankings: Rankings
    # Answers kept rendered (JSON), by request, within a budget in bytes: those that depend on
    # the bundle alone (charts, similar movies, visitors), and users' under their ranking's
    # token. A reload makes new Services, so none outlives its bundle.
    rendered: LRUCache[Hashable, bytes]
    # Visitors' answers, computed and encoded off the event loop in batches: one hop for the
    # visitors that arrive together, to the second process (`process`) or the thread pool.
    visitors: Batcher[[Mapping[int, float], int, Filters], bytes]
    process: VisitorProcess | None

    def start(self) -> None:
        """Start the visitor process in the background (on the event loop): visitors are
        answered in the thread pool until it is ready (app.services.visitor_process)."""
        if self.process is not None:
            self.process.start()

    async def close(self) -> None:
        """Stop what these services started (the visitor process), once the batch in flight
        is answered; requests still on them then answer visitors in this process."""
        if self.process is not None:
            await self.process.close()

    @classmethod
    def create(
        cls,
        bundle: Bundle,
        home: HomeConfig,
        repository: FeedbackRepository,
        metrics: Metrics,
        cache_seconds: float,
        feedback_users: FeedbackUsers | None,
        rendered_bytes: int,
        visitor_process: bool,
    ) -> Services:
        """The services over a bundle; the last four come from Settings (FEEDBACK_CACHE_SECONDS,
        the users with stored feedback when that cache is exact, RENDERED_CACHE_MB,
        VISITOR_PROCESS). Blocking (the bundle's tables): for the thread pool. `start` then
        starts the visitor process."""
        process = VisitorProcess(bundle.path, bundle.version, metrics) if visitor_process else None
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
        rankings = Rankings(recommender, feedback)
        return cls(
            bundle,
            catalog,
            recommender,
            home,
            feedback,
            rankings,
            rendered_cache(rendered_bytes),
            Batcher(recommender.visitor_answer, process or through_thread_pool),
            process,
        )


# Allocations between young collections, and young (then middle) collections between older
# ones: CPython's defaults are 700, 10, 10 (3.11).
GC_THRESHOLDS = (100_000, 50, 100)


def freeze_heap() -> None:
    """Take every object alive now (the code, a bundle's cards and tables: ~260,000 objects on
    ml-latest-small) out of the cyclic garbage collector's passes, which a busy server would
    otherwise run over them again and again (`gc.freeze`; garbage is collected first, not
    frozen). Called once the services serve, and again after a reload: a replaced bundle's
    services hold no reference cycles, so reference counting still frees them
    (tests/app/test_admin.py checks it).

    The collector also runs less often (GC_THRESHOLDS): the kept answers (Services.rendered)
    grow to tens of thousands of entries that every full pass walks, and with CPython's
    defaults such passes came often enough to cost a load run of new visitors ~12 % of its
    throughput and double its p99 (README, Speed). Reference counting frees everything else."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop on every request.
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ModelNotReady("no model bundle is loaded")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
