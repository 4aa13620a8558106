"""The one canonical form every loader produces.

ratings: user_id (int64), movie_id (int64), rating (float32), timestamp (int64 unix seconds),
with the dataset's own ids kept. movies: movie_id (int64), title (str), year (Int64, nullable),
genres (str, '|'-separated, '' for none), imdb_id (Int64, nullable), tmdb_id (Int64, nullable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RATING_COLUMNS = ["user_id", "movie_id", "rating", "timestamp"]
MOVIE_COLUMNS = ["movie_id", "title", "year", "genres", "imdb_id", "tmdb_id"]

_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")


class DatasetError(ValueError):
    """The input is not a dataset we can read, or it is damaged."""


@dataclass
class Dataset:
    """Ratings and movies in canonical form, plus where they came from."""

    name: str
    layout: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    rating_scale: tuple[float, float]
    checksum: str = ""
    # Netflix Prize extras: the probe pairs (held-out part of the training data) and the
    # qualifying pairs (no ratings published). Empty frames when the layout has none.
    probe: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["user_id", "movie_id"]))
    qualifying: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["user_id", "movie_id", "timestamp"])
    )
    # Implicit signals from the service's stored events (see training.signals): one row per
    # user and movie the user did not rate. Empty unless feedback was merged in.
    signals: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {"user_id": [], "movie_id": [], "weight": [], "watched": []}
        ).astype({"user_id": "int64", "movie_id": "int64", "weight": "float32", "watched": bool})
    )

    @property
    def counts(self) -> dict[str, int]:
        return {
            "ratings": len(self.ratings),
            "users": int(self.ratings["user_id"].nunique()),
            "movies": len(self.movies),
        }


def canonical_ratings(
    user_id: pd.Series | np.ndarray,
    movie_id: pd.Series | np.ndarray,
    rating: pd.Series | np.ndarray,
    timestamp: pd.Series | np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.asarray(user_id, dtype=np.int64),
            "movie_id": np.asarray(movie_id, dtype=np.int64),
            "rating": np.asarray(rating, dtype=np.float32),
            "timestamp": np.asarray(timestamp, dtype=np.int64),
        }
    )


def canonical_movies(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill missing optional columns and fix dtypes; one row per movie_id."""
    out = frame.copy()
    for column in ("year", "imdb_id", "tmdb_id"):
        if column not in out:
            out[column] = pd.NA
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("Int64")
    if "genres" not in out:
        out["genres"] = ""
    out["genres"] = out["genres"].fillna("").astype(str)
    out["title"] = out["title"].fillna("").astype(str).str.strip()
    out["movie_id"] = out["movie_id"].astype(np.int64)
    out = out.drop_duplicates("movie_id", keep="first")
    return out[MOVIE_COLUMNS].sort_values("movie_id").reset_index(drop=True)


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); titles without a year keep year <NA>."""
    titles = titles.fillna("").astype(str).str.strip()
    years = titles.str.extract(_YEAR_IN_TITLE, expand=False)
    stripped = titles.str.replace(_YEAR_IN_TITLE, "", regex=True)
    return stripped, pd.to_numeric(years, errors="coerce").astype("Int64")


def movielens_genres(genres: pd.Series) -> pd.Series:
    """MovieLens writes '(no genres listed)' for none; canonical form is ''."""
    return genres.fillna("").astype(str).replace("(no genres listed)", "")


def movies_from_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """A movies table with placeholder titles, for layouts that ship no titles."""
    ids = np.sort(ratings["movie_id"].unique())
    return canonical_movies(pd.DataFrame({"movie_id": ids, "title": [f"Movie {i}" for i in ids]}))


def complete_movies(ratings: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    """Every rated movie must have a row; add placeholders for ones the titles file lacks."""
    missing = np.setdiff1d(ratings["movie_id"].unique(), movies["movie_id"].to_numpy())
    if len(missing) == 0:
        return movies
    extra = pd.DataFrame({"movie_id": missing, "title": [f"Movie {i}" for i in missing]})
    return canonical_movies(pd.concat([movies, extra], ignore_index=True))
