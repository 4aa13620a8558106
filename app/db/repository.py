"""Queries over the feedback tables. Each write is one transaction: all of it or none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Event, Rating


@dataclass(frozen=True)
class StoredRating:
    movie_id: int
    rating: float
    rated_at: datetime

    @classmethod
    def from_row(cls, movie_id: int, rating: float, rated_at: datetime) -> StoredRating:
        # SQLite keeps no time zone; every stored time is UTC.
        return cls(movie_id, rating, rated_at if rated_at.tzinfo else rated_at.replace(tzinfo=UTC))


class FeedbackRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def upsert_ratings(self, user_id: int, ratings: Sequence[StoredRating]) -> None:
        """Store the ratings, replacing older ones for the same movie, in one transaction."""
        if not ratings:
            return
        # Rows in one order (by movie) make concurrent upserts of overlapping movies take their
        # row locks in the same order, so PostgreSQL cannot deadlock two of them.
        rows = [
            {"user_id": user_id, "movie_id": r.movie_id, "rating": r.rating, "rated_at": r.rated_at}
            for r in sorted(ratings, key=lambda r: r.movie_id)
        ]
        async with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(Rating).values(rows)
            statement = statement.on_conflict_do_update(
                index_elements=[Rating.user_id, Rating.movie_id],
                set_={"rating": statement.excluded.rating, "rated_at": statement.excluded.rated_at},
            )
            await session.execute(statement)

    async def delete_rating(self, user_id: int, movie_id: int) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(Rating).where(Rating.user_id == user_id, Rating.movie_id == movie_id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def ratings_page(self, user_id: int, limit: int, offset: int) -> tuple[list[StoredRating], int]:
        """Newest first, with the total for paging."""
        async with self.sessions() as session:
            total = await session.scalar(
                select(func.count()).select_from(Rating).where(Rating.user_id == user_id)
            )
            rows = await session.execute(
                select(Rating.movie_id, Rating.rating, Rating.rated_at)
                .where(Rating.user_id == user_id)
                .order_by(Rating.rated_at.desc(), Rating.movie_id)
                .limit(limit)
                .offset(offset)
            )
            return [StoredRating.from_row(*row) for row in rows], int(total or 0)

    async def users_with_feedback(self) -> list[int]:
        """Every user with a stored rating or event."""
        async with self.sessions() as session:
            rows = await session.execute(select(Rating.user_id).union(select(Event.user_id)))
            return [user_id for (user_id,) in rows]

    async def feedback_of_users(
        self, user_ids: Sequence[int]
    ) -> tuple[dict[int, list[StoredRating]], dict[int, list[tuple[int, str]]]]:
        """Stored ratings and the distinct (movie, kind) pairs of the events of many users, in
        two queries on one connection (users without any are left out)."""
        ratings: dict[int, list[StoredRating]] = {}
        events: dict[int, list[tuple[int, str]]] = {}
        if not user_ids:
            return ratings, events
        users = list(user_ids)
        async with self.sessions() as session:
            rows = await session.execute(
                select(Rating.user_id, Rating.movie_id, Rating.rating, Rating.rated_at).where(
                    Rating.user_id.in_(users)
                )
            )
            for user_id, movie_id, rating, rated_at in rows:
                ratings.setdefault(user_id, []).append(StoredRating.from_row(movie_id, rating, rated_at))
            kinds = await session.execute(
                select(Event.user_id, Event.movie_id, Event.kind)
                .where(Event.user_id.in_(users))
                .group_by(Event.user_id, Event.movie_id, Event.kind)
            )
            for user_id, movie_id, kind in kinds:
                events.setdefault(user_id, []).append((movie_id, kind))
        return ratings, events

    async def add_events(self, user_id: int, events: Sequence[tuple[int, str, datetime]]) -> None:
        async with self.sessions.begin() as session:
            session.add_all(Event(user_id=user_id, movie_id=m, kind=k, at=at) for m, k, at in events)
