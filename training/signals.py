"""Implicit signals from events (views, clicks, plays), shared by the build and the service.

An event says a user showed interest in a movie without rating it. Each kind has a weight
in (0, 1], read as a fraction of the rating scale's top: the ranking model's confidence for
the movie is then 1 + alpha * weight, the same formula as a rating's (see
`training.models.als`), so a finished film counts for about a 4-star rating on a 5-star scale
and a click for half a star. Several events of one movie keep the strongest; a rating of the
movie replaces them all. Events never feed the rating predictor (they are not ratings).

Movies the user played or finished are *watched*: like rated ones they are never
recommended back. A click or a page view is interest only: the movie may still be shown.
"""

from __future__ import annotations

import pandas as pd

EVENT_KINDS = ("click", "view", "play", "finish")
EVENT_WEIGHTS: dict[str, float] = {"click": 0.1, "view": 0.2, "play": 0.5, "finish": 0.8}
WATCHED_KINDS = frozenset({"play", "finish"})


def event_signals(events: pd.DataFrame) -> pd.DataFrame:
    """Events (user_id, movie_id, kind) -> one row per user and movie: (user_id, movie_id,
    weight, watched), the strongest weight among the pair's events."""
    frame = events.assign(
        weight=events["kind"].map(EVENT_WEIGHTS).astype("float32"),
        watched=events["kind"].isin(WATCHED_KINDS),
    ).dropna(subset=["weight"])
    grouped = frame.groupby(["user_id", "movie_id"], as_index=False, sort=True).agg(
        weight=("weight", "max"), watched=("watched", "any")
    )
    return grouped.astype({"user_id": "int64", "movie_id": "int64", "weight": "float32", "watched": bool})
