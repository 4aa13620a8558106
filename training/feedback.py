"""Read the service's stored feedback so the next build learns from it.

`python -m training build --feedback DATABASE_URL` merges the stored ratings into the dataset
(a stored rating wins over the dataset's for the same user and movie) and records the counts
in the manifest. Events (views, clicks) are counted but not yet used as signals.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from training.datasets import Dataset
from training.datasets.canonical import canonical_ratings


@dataclass(frozen=True)
class Feedback:
    ratings: pd.DataFrame  # canonical ratings
    events: int


def read_feedback(database_url: str) -> Feedback:
    return asyncio.run(_read(database_url))


async def _read(database_url: str) -> Feedback:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT user_id, movie_id, rating, rated_at FROM ratings"))
            ).all()
            events = (await connection.execute(text("SELECT count(*) FROM events"))).scalar_one()
    finally:
        await engine.dispose()
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "rated_at"])
    # PostgreSQL returns datetimes, SQLite the text it stored: parse either form.
    stamps = pd.to_datetime(frame["rated_at"], utc=True, format="mixed")
    seconds = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    ratings = canonical_ratings(
        frame["user_id"], frame["movie_id"], frame["rating"], seconds.to_numpy(np.int64)
    )
    return Feedback(ratings, int(events))


def merge_feedback(dataset: Dataset, feedback: Feedback) -> tuple[Dataset, dict[str, int]]:
    """The dataset with the stored ratings on top; ratings of movies outside the catalog are dropped."""
    known = feedback.ratings["movie_id"].isin(dataset.movies["movie_id"])
    stored = feedback.ratings[known]
    keys = ["user_id", "movie_id"]
    replaced = len(dataset.ratings.merge(stored[keys], on=keys))
    merged = (
        pd.concat([dataset.ratings, stored], ignore_index=True)
        .drop_duplicates(keys, keep="last")
        .reset_index(drop=True)
    )
    counts = {
        "ratings": len(stored),
        "replaced_dataset_ratings": replaced,
        "dropped_unknown_movies": int((~known).sum()),
        "events": feedback.events,
    }
    dataset = Dataset(
        dataset.name,
        dataset.layout,
        merged,
        dataset.movies,
        dataset.rating_scale,
        dataset.checksum,
        dataset.probe,
        dataset.qualifying,
    )
    return dataset, counts
