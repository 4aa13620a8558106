"""Read the service's stored feedback so the next build learns from it.

`python -m training build --feedback DATABASE_URL` merges the stored ratings into the dataset
(a stored rating wins over the dataset's for the same user and movie), turns the stored events
into implicit signals for the ranking model (see training.signals; a rated movie's events are
dropped, the rating says more) and records the counts in the manifest.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from training.datasets import Dataset
from training.datasets.canonical import canonical_ratings
from training.signals import event_signals


@dataclass(frozen=True)
class Feedback:
    ratings: pd.DataFrame  # canonical ratings
    events: pd.DataFrame  # user_id, movie_id, kind, count: one row per distinct triple


def read_feedback(database_url: str) -> Feedback:
    return asyncio.run(_read(database_url))


async def _read(database_url: str) -> Feedback:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(text("SELECT user_id, movie_id, rating, rated_at FROM ratings"))
            ).all()
            # Grouped in the database: a user viewing one film a thousand times is one row.
            grouped = "SELECT user_id, movie_id, kind, count(*) FROM events GROUP BY user_id, movie_id, kind"
            event_rows = (await connection.execute(text(grouped))).all()
    finally:
        await engine.dispose()
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "rated_at"])
    # PostgreSQL returns datetimes, SQLite the text it stored: parse either form.
    stamps = pd.to_datetime(frame["rated_at"], utc=True, format="mixed")
    seconds = (stamps - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    ratings = canonical_ratings(
        frame["user_id"], frame["movie_id"], frame["rating"], seconds.to_numpy(np.int64)
    )
    events = pd.DataFrame(event_rows, columns=["user_id", "movie_id", "kind", "count"]).astype(
        {"user_id": "int64", "movie_id": "int64", "count": "int64"}
    )
    return Feedback(ratings, events)


def merge_feedback(dataset: Dataset, feedback: Feedback) -> tuple[Dataset, dict[str, int]]:
    """The dataset with the stored ratings on top and the events as signals; feedback on
    movies outside the catalog is dropped."""
    catalog = dataset.movies["movie_id"]
    known = feedback.ratings["movie_id"].isin(catalog)
    stored = feedback.ratings[known]
    keys = ["user_id", "movie_id"]
    replaced = len(dataset.ratings.merge(stored[keys], on=keys))
    merged = (
        pd.concat([dataset.ratings, stored], ignore_index=True)
        .drop_duplicates(keys, keep="last")
        .reset_index(drop=True)
    )
    in_catalog = feedback.events["movie_id"].isin(catalog)
    signals = event_signals(feedback.events[in_catalog])
    rated = signals.merge(merged[keys], on=keys, how="left", indicator=True)["_merge"] == "both"
    signals = signals[~rated.to_numpy()].reset_index(drop=True)
    counts = {
        "ratings": len(stored),
        "replaced_dataset_ratings": replaced,
        "dropped_unknown_movies": int((~known).sum()),
        "dropped_unknown_movie_events": int(feedback.events.loc[~in_catalog, "count"].sum()),
        "events": int(feedback.events["count"].sum()),
        "signals": len(signals),
    }
    return dataclasses.replace(dataset, ratings=merged, signals=signals), counts
