"""Shared fixtures: small synthetic rating data written in the real file formats."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Apps made in tests never touch the project's data/ folder.
os.environ["DATABASE_URL"] = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='cinerec-test-')}/default.db"
# Apps made in tests answer visitors in their thread pool: a visitor process takes seconds to
# start. The session's main client (tests/app/conftest.py) and test_visitor_process.py start one.
os.environ["VISITOR_PROCESS"] = "false"

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def synthetic_ratings(n_users: int = 60, n_movies: int = 40, seed: int = 0) -> pd.DataFrame:
    """Users in two taste groups: even users like even movies, odd users odd ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        liked = [m for m in range(1, n_movies + 1) if m % 2 == user % 2]
        other = [m for m in range(1, n_movies + 1) if m % 2 != user % 2]
        picks = list(rng.choice(liked, size=10, replace=False)) + list(
            rng.choice(other, size=2, replace=False)
        )
        for movie in picks:
            rating = 4.5 if movie in liked else 1.5
            rating += float(rng.choice([-0.5, 0.0, 0.5]))
            rows.append((user, int(movie), rating, 1_500_000_000 + int(rng.integers(0, 10_000_000))))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def write_movielens_csv(directory: Path, n_users: int = 60, n_movies: int = 40) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    synthetic_ratings(n_users, n_movies).to_csv(directory / "ratings.csv", index=False)
    movies = pd.DataFrame(
        {
            "movieId": range(1, n_movies + 1),
            "title": [f"Movie {i}, The ({1980 + i})" for i in range(1, n_movies + 1)],
            "genres": [
                "|".join([GENRES[i % 5], GENRES[(i + 2) % 5]]) if i % 7 else "(no genres listed)"
                for i in range(1, n_movies + 1)
            ],
        }
    )
    movies.to_csv(directory / "movies.csv", index=False)
    links = pd.DataFrame(
        {
            "movieId": range(1, n_movies + 1),
            "imdbId": [100000 + i for i in range(1, n_movies + 1)],
            "tmdbId": [None if i == 3 else 500 + i for i in range(1, n_movies + 1)],
        }
    )
    links.to_csv(directory / "links.csv", index=False)
    return directory


@pytest.fixture
def movielens_dir(tmp_path: Path) -> Path:
    return write_movielens_csv(tmp_path / "ml-mini")
