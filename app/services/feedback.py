"""Live feedback: validate and store ratings and events, and hand the recommender each
user's stored feedback (cached per user, dropped on every write of theirs)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
from cachetools import Cache
from sqlalchemy.exc import SQLAlchemyError

from app.db.repository import FeedbackRepository, StoredRating
from app.errors import DatabaseUnavailable, MoviesNotFound, NotRated, RatingOffScale
from app.metrics import Metrics
from app.services.catalog import Catalog
from app.services.recommender import Recommender, Stored, per_user_cache
from training.signals import EVENT_WEIGHTS, WATCHED_KINDS

log = logging.getLogger("cinerec.feedback")
T = TypeVar("T")

# What a database that is down or unreachable raises, through SQLAlchemy or the socket.
DB_ERRORS = (SQLAlchemyError, OSError)


class FeedbackUsers:
    """The users with any stored feedback: read once at start-up, then added to before every
    write through this process. Someone outside it has none, so reading theirs skips the
    database. Exact with one process, as the feedback cache is with FEEDBACK_CACHE_SECONDS=0,
    the only setting that uses it (see app.settings)."""

    def __init__(self, user_ids: Sequence[int]):
        self._loaded = np.unique(np.asarray(user_ids, dtype=np.int64))
        self._added: set[int] = set()

    @classmethod
    async def load(cls, repository: FeedbackRepository) -> FeedbackUsers | None:
        """None when the database cannot be read now (every read then asks it)."""
        try:
            return cls(await repository.users_with_feedback())
        except DB_ERRORS as exc:
            log.warning("cannot list the users with feedback (%s): reads will ask the database", exc)
            return None

    def among(self, user_ids: Sequence[int]) -> list[int]:
        """Those of `user_ids` that may have stored feedback."""
        ids = np.asarray(user_ids, dtype=np.int64)
        known = np.isin(ids, self._loaded, assume_unique=True)
        later = [u for u in ids[~known].tolist() if u in self._added] if self._added else []
        return ids[known].tolist() + later

    def add(self, user_id: int) -> None:
        self._added.add(user_id)


class FeedbackService:
    def __init__(
        self,
        repository: FeedbackRepository,
        catalog: Catalog,
        recommender: Recommender,
        scale: tuple[float, float],
        metrics: Metrics | None = None,
        cache_size: int = 100_000,
        cache_seconds: float = 0.0,
        users: FeedbackUsers | None = None,
    ):
        self.metrics = metrics
        self.repository = repository
        # Shared with the services of the next bundle: it outlives a reload.
        self.users = users
        self.catalog = catalog
        self.recommender = recommender
        self.scale = scale
        self._stored: Cache[int, Stored] = per_user_cache(cache_size, cache_seconds)
        self._lock = threading.Lock()
        # The service of the bundle that replaced this one (/admin/reload): a write that began
        # here and lands after the swap must drop what the new services cached too.
        self.successor: FeedbackService | None = None

    async def stored(self, user_id: int) -> Stored | None:
        """The user's stored feedback; None when there is none or the database cannot be read
        (reads then go on from the bundle alone)."""
        return (await self.stored_many([user_id])).get(user_id)

    async def stored_many(self, user_ids: Sequence[int]) -> dict[int, Stored]:
        """Stored feedback of the users that have any, cached ones first and the rest in two
        queries (ratings, grouped events); empty when the database cannot be read."""
        found: dict[int, Stored] = {}
        missing = []
        # The recommender's generation is bumped by every write (see _changed): feedback read
        # across a write is not cached.
        generation = self.recommender.generation
        asked = set(user_ids)
        if self.users is not None:
            asked = set(self.users.among(list(asked)))  # the others have none stored
        with self._lock:
            for user_id in asked:
                cached = self._stored.get(user_id)
                if cached is None:
                    missing.append(user_id)
                elif cached:
                    found[user_id] = cached
        if not missing:
            return found
        try:
            ratings, events = await self.repository.feedback_of_users(missing)
        except DB_ERRORS as exc:
            log.warning("feedback database unavailable, serving from the bundle: %s", exc.__class__.__name__)
            return found
        with self._lock:
            cacheable = generation == self.recommender.generation
            for user_id in missing:
                stored = self._as_positions(ratings.get(user_id, []), events.get(user_id, []))
                if cacheable:
                    self._stored[user_id] = stored
                if stored:
                    found[user_id] = stored
        return found

    def _as_positions(self, ratings: Sequence[StoredRating], events: Sequence[tuple[int, str]]) -> Stored:
        """Feedback by catalog position; feedback on movies no longer in the catalog is skipped.
        Events follow training.signals' rule (its event_signals applies it to a whole table)."""
        index = self.catalog.index
        rated = index.positions(np.array([r.movie_id for r in ratings], dtype=np.int64))
        by_position = {int(p): r.rating for p, r in zip(rated, ratings, strict=True) if p >= 0}
        signals: dict[int, float] = {}
        watched = set()
        seen = index.positions(np.array([movie_id for movie_id, _ in events], dtype=np.int64))
        for p, (_, kind) in zip(seen.tolist(), events, strict=True):
            if p < 0 or p in by_position or kind not in EVENT_WEIGHTS:
                continue
            signals[p] = max(signals.get(p, 0.0), EVENT_WEIGHTS[kind])
            if kind in WATCHED_KINDS:
                watched.add(p)
        return Stored(by_position, signals, frozenset(watched))

    async def rate(
        self, user_id: int, ratings: Sequence[tuple[int, float, datetime | None]]
    ) -> list[StoredRating]:
        """Validate every rating first, then store them all in one transaction."""
        movie_ids = [movie_id for movie_id, _, _ in ratings]
        self.catalog.positions(movie_ids, error=MoviesNotFound)
        RatingOffScale.check(((m, r) for m, r, _ in ratings), self.scale)
        now = datetime.now(UTC)
        latest: dict[int, StoredRating] = {}  # a movie twice in one batch: the last one counts
        for movie_id, rating, rated_at in ratings:
            latest[movie_id] = StoredRating(movie_id, float(rating), rated_at or now)
        rows = list(latest.values())
        self._will_change(user_id)
        await self._guarded(self.repository.upsert_ratings(user_id, rows))
        self._changed(user_id)
        return rows

    async def unrate(self, user_id: int, movie_id: int) -> None:
        removed = await self._guarded(self.repository.delete_rating(user_id, movie_id))
        if not removed:
            raise NotRated(user_id, movie_id)
        self._changed(user_id)

    async def page(self, user_id: int, limit: int, offset: int) -> tuple[list[StoredRating], int]:
        return await self._guarded(self.repository.ratings_page(user_id, limit, offset))

    async def add_events(self, user_id: int, events: Sequence[tuple[int, str, datetime | None]]) -> int:
        self.catalog.positions([movie_id for movie_id, _, _ in events], error=MoviesNotFound)
        now = datetime.now(UTC)
        self._will_change(user_id)
        await self._guarded(self.repository.add_events(user_id, [(m, k, at or now) for m, k, at in events]))
        self._changed(user_id)
        return len(events)

    def _will_change(self, user_id: int) -> None:
        # Before the write: from now on their reads go to the database (a failed write costs
        # only that).
        if self.users is not None:
            self.users.add(user_id)

    def _changed(self, user_id: int) -> None:
        # Bump the generation first: a read that checks it after this sees the change and does
        # not cache; one that cached before is dropped by the pop below. The same for every
        # bundle's services swapped in since this one.
        service: FeedbackService | None = self
        while service is not None:
            service.recommender.invalidate(user_id)
            with service._lock:
                service._stored.pop(user_id, None)
            service = service.successor

    def _count_error(self, operation: str) -> None:
        if self.metrics:
            self.metrics.db_errors.labels(operation).inc()

    async def _guarded(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except DB_ERRORS as exc:
            self._count_error("query")
            log.error("feedback database unavailable: %s", exc.__class__.__name__)
            raise DatabaseUnavailable() from exc
