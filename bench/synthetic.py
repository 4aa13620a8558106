"""Synthetic rating data shaped like MovieLens 25M, written in the MovieLens CSV layout.

162,541 users, 59,047 movies, ~20M ratings; user activity log-normal (min 20 ratings, long
right tail), movie popularity Zipf-like, ratings 0.5-5 from user + movie biases, a low-rank
taste term and noise. Deterministic for a seed.

    .venv/bin/python -m bench.synthetic --out /tmp/cinerec-bench/ml25m-synth
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

USERS = 162_541
MOVIES = 59_047
RATINGS = 20_000_000


def generate(
    out: Path, users: int = USERS, movies: int = MOVIES, ratings: int = RATINGS, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    activity = rng.lognormal(mean=0.0, sigma=1.1, size=users)
    per_user = np.maximum(20, (activity / activity.sum() * ratings * 1.08).astype(np.int64))
    popularity = 1.0 / np.arange(1, movies + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    user_of = np.repeat(np.arange(users, dtype=np.int64), per_user)
    movie_of = rng.choice(movies, size=len(user_of), p=popularity)
    keys = np.unique(user_of * movies + movie_of)  # one rating per user and movie
    if len(keys) > ratings:
        keys = np.sort(rng.choice(keys, size=ratings, replace=False))
    user_of, movie_of = keys // movies, keys % movies
    taste_u = rng.normal(0, 0.5, (users, 4)).astype(np.float32)
    taste_m = rng.normal(0, 0.5, (movies, 4)).astype(np.float32)
    score = (
        3.5
        + rng.normal(0, 0.4, users)[user_of]
        + rng.normal(0, 0.5, movies)[movie_of]
        + np.einsum("ij,ij->i", taste_u[user_of], taste_m[movie_of])
        + rng.normal(0, 0.6, len(keys))
    )
    rating = np.clip(np.round(score * 2) / 2, 0.5, 5.0).astype(np.float32)
    timestamp = rng.integers(789_652_009, 1_574_327_703, len(keys))
    table = pa.table(
        {"userId": user_of + 1, "movieId": movie_of + 1, "rating": rating, "timestamp": timestamp}
    )
    pacsv.write_csv(table, out / "ratings.csv")
    genres = np.array(["Action", "Comedy", "Drama", "Thriller", "Romance", "Sci-Fi", "Horror", "Animation"])
    movie_genres = ["|".join(genres[rng.choice(8, size=1 + i % 3, replace=False)]) for i in range(movies)]
    years = rng.integers(1920, 2020, movies)
    titles = [f"Synthetic Movie {i + 1} ({y})" for i, y in enumerate(years)]
    pacsv.write_csv(
        pa.table({"movieId": np.arange(1, movies + 1), "title": titles, "genres": movie_genres}),
        out / "movies.csv",
    )
    return out


def scaled_down(out: Path, ratings: int) -> Path:
    """The same shape at `ratings` ratings, users and movies scaled with it (the comparison
    benchmarks' default data)."""
    return generate(out, max(1000, ratings // 120), max(500, ratings // 340), ratings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/cinerec-bench/ml25m-synth"))
    parser.add_argument("--ratings", type=int, default=RATINGS)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--movies", type=int, default=MOVIES)
    args = parser.parse_args()
    started = time.perf_counter()
    generate(args.out, args.users, args.movies, args.ratings)
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
