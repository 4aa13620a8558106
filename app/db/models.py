"""Tables for live feedback: one current rating per user and movie, and implicit events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Rating(Base):
    """The user's current rating of a movie; a new rating replaces the old one."""

    __tablename__ = "ratings"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    movie_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rating: Mapped[float] = mapped_column(Float, nullable=False)
    rated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_ratings_user_rated_at", "user_id", "rated_at"),)


class Event(Base):
    """A view or click: an implicit signal, weaker than a rating."""

    __tablename__ = "events"

    # Integer on SQLite (its only auto-increment type), BIGINT elsewhere.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    movie_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_events_user_at", "user_id", "at"),)
