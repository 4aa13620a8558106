"""Popularity charts: most rated, Bayesian top rated and trending, overall and per genre."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

CHARTS = ("most_rated", "top_rated", "trending")


class PopularityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Weight of the prior (the global mean) in the Bayesian average, in ratings; None = the
    # median number of ratings of a rated movie (at least 1).
    prior_weight: float | None = Field(None, gt=0)
    trending_half_life_days: float = Field(30.0, gt=0)
    trending_window_days: float = Field(365.0, gt=0)


def movie_stats(ratings: pd.DataFrame, movie_ids: np.ndarray, config: PopularityConfig) -> pd.DataFrame:
    """Per movie (in `movie_ids` order): n_ratings, mean_rating, bayes_rating, trending."""
    grouped = ratings.groupby("movie_id")["rating"].agg(["count", "sum"])
    grouped = grouped.reindex(movie_ids, fill_value=0)
    now = int(ratings["timestamp"].max()) if len(ratings) else 0
    age_days = (now - ratings["timestamp"].to_numpy()) / 86_400.0
    recent = age_days <= config.trending_window_days
    decay = np.exp2(-age_days[recent] / config.trending_half_life_days)
    trending = (
        pd.Series(decay, index=ratings["movie_id"].to_numpy()[recent])
        .groupby(level=0)
        .sum()
        .reindex(movie_ids, fill_value=0.0)
    )
    global_mean = float(ratings["rating"].mean()) if len(ratings) else 0.0
    return stats_from_sums(
        movie_ids,
        grouped["count"].to_numpy(np.float64),
        grouped["sum"].to_numpy(np.float64),
        trending.to_numpy(np.float64),
        global_mean,
        config,
    )


def stats_from_sums(
    movie_ids: np.ndarray,
    n: np.ndarray,
    total: np.ndarray,
    trending: np.ndarray,
    global_mean: float,
    config: PopularityConfig,
) -> pd.DataFrame:
    """The per-movie stats from per-movie sums (count, sum of ratings, decayed recent count),
    however they were aggregated (pandas here, Spark in training.spark)."""
    prior = config.prior_weight or max(1.0, float(np.median(n[n > 0])) if (n > 0).any() else 1.0)
    return pd.DataFrame(
        {
            "movie_id": movie_ids,
            "n_ratings": n.astype(np.int64),
            "mean_rating": np.divide(total, n, out=np.full_like(total, np.nan), where=n > 0),
            "bayes_rating": (total + prior * global_mean) / (n + prior),
            "trending": trending,
        }
    )


def charts(stats: pd.DataFrame, genres: pd.Series) -> pd.DataFrame:
    """Every chart, overall (genre '') and per genre, as ranked rows (chart, genre, rank, movie_id, score).

    Ties break by number of ratings, then movie id, so charts are deterministic. Unrated movies
    are left out of every chart.
    """
    frame = stats.assign(genres=genres.to_numpy())
    frame = frame[frame["n_ratings"] > 0]
    exploded = frame.assign(genre=frame["genres"].str.split("|")).explode("genre")
    exploded = exploded[exploded["genre"].fillna("") != ""]
    scopes = pd.concat([frame.assign(genre=""), exploded], ignore_index=True)
    score_column = {"most_rated": "n_ratings", "top_rated": "bayes_rating", "trending": "trending"}
    parts = []
    for chart, column in score_column.items():
        ranked = scopes.sort_values(
            ["genre", column, "n_ratings", "movie_id"], ascending=[True, False, False, True]
        )
        ranked = ranked.assign(
            chart=chart,
            rank=ranked.groupby("genre").cumcount().astype(np.int32),
            score=ranked[column].astype(np.float64),
        )
        parts.append(ranked[["chart", "genre", "rank", "movie_id", "score"]])
    return pd.concat(parts, ignore_index=True)
