"""MovieLens, every published layout.

- ml-100k: u.data (TAB: user item rating timestamp), u.item ('|', latin-1, 19 genre flags
  in the order of u.genre).
- ml-1m, ml-10m: ratings.dat / movies.dat with '::' separators (ml-1m is latin-1).
- ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small: ratings.csv, movies.csv, links.csv.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from training.datasets.canonical import (
    Dataset,
    DatasetError,
    canonical_movies,
    canonical_ratings,
    complete_movies,
    movielens_genres,
    split_title_year,
)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def detect(directory: Path) -> str | None:
    """The MovieLens layout of an unpacked directory, or None."""
    if (directory / "u.data").is_file():
        return "movielens-100k"
    if (directory / "ratings.dat").is_file():
        return "movielens-dat"
    if (directory / "ratings.csv").is_file():
        return "movielens-csv"
    return None


def load(directory: Path, layout: str, name: str) -> Dataset:
    loaders = {
        "movielens-100k": _load_100k,
        "movielens-dat": _load_dat,
        "movielens-csv": _load_csv,
    }
    ratings, movies = loaders[layout](directory)
    if ratings.empty:
        raise DatasetError(f"{directory}: no ratings found")
    scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
    return Dataset(
        name=name,
        layout=layout,
        ratings=ratings,
        movies=complete_movies(ratings, movies),
        rating_scale=scale,
    )


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, engine="pyarrow", **kwargs)  # type: ignore[call-overload]
    except Exception as exc:  # pyarrow raises its own error types for malformed input
        raise DatasetError(f"{path}: cannot parse ({exc})") from exc


def _load_csv(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_csv(
        directory / "ratings.csv",
        dtype={"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"},
    )
    _require_columns(raw, ["userId", "movieId", "rating", "timestamp"], directory / "ratings.csv")
    ratings = canonical_ratings(raw["userId"], raw["movieId"], raw["rating"], raw["timestamp"])

    movies_path = directory / "movies.csv"
    if movies_path.is_file():
        # Titles contain quoted commas; the C engine handles the quoting and is fast enough
        # for ~90k rows.
        raw_movies = pd.read_csv(movies_path, dtype={"movieId": "int64"}, keep_default_na=False)
        _require_columns(raw_movies, ["movieId", "title", "genres"], movies_path)
        title, year = split_title_year(raw_movies["title"])
        movies = pd.DataFrame(
            {
                "movie_id": raw_movies["movieId"],
                "title": title,
                "year": year,
                "genres": movielens_genres(raw_movies["genres"]),
            }
        )
    else:
        movies = pd.DataFrame({"movie_id": pd.Series(dtype="int64"), "title": []})

    links_path = directory / "links.csv"
    if links_path.is_file() and not movies.empty:
        links = pd.read_csv(links_path, dtype={"movieId": "int64"}, keep_default_na=True)
        links = links.rename(columns={"movieId": "movie_id", "imdbId": "imdb_id", "tmdbId": "tmdb_id"})
        movies = movies.merge(links[["movie_id", "imdb_id", "tmdb_id"]], on="movie_id", how="left")
    return ratings, canonical_movies(movies)


def _load_dat(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    # '::' is a multi-character separator that only pandas' slow python engine accepts;
    # rewriting it to ',' in memory lets pyarrow parse 10M rows in seconds.
    data = (directory / "ratings.dat").read_bytes().replace(b"::", b",")
    try:
        raw = pd.read_csv(
            io.BytesIO(data),
            engine="pyarrow",
            header=None,
            names=["user_id", "movie_id", "rating", "timestamp"],
            dtype={"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"},
        )
    except Exception as exc:
        raise DatasetError(f"{directory / 'ratings.dat'}: cannot parse ({exc})") from exc
    ratings = canonical_ratings(raw["user_id"], raw["movie_id"], raw["rating"], raw["timestamp"])

    movies_path = directory / "movies.dat"
    rows = []
    if movies_path.is_file():
        text = _decode(movies_path.read_bytes())
        for line in text.splitlines():
            if not line.strip():
                continue
            parts = line.split("::")
            if len(parts) != 3:
                raise DatasetError(f"{movies_path}: malformed line {line!r}")
            rows.append(parts)
    frame = pd.DataFrame(rows, columns=["movie_id", "title", "genres"])
    title, year = split_title_year(frame["title"])
    movies = pd.DataFrame(
        {
            "movie_id": pd.to_numeric(frame["movie_id"]).astype("int64"),
            "title": title,
            "year": year,
            "genres": movielens_genres(frame["genres"]),
        }
    )
    return ratings, canonical_movies(movies)


def _load_100k(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = _read_csv(
        directory / "u.data",
        sep="\t",
        header=None,
        names=["user_id", "movie_id", "rating", "timestamp"],
        dtype={"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"},
    )
    ratings = canonical_ratings(raw["user_id"], raw["movie_id"], raw["rating"], raw["timestamp"])

    item_path = directory / "u.item"
    genre_names = ML100K_GENRES
    genre_path = directory / "u.genre"
    if genre_path.is_file():
        pairs = [ln.split("|") for ln in _decode(genre_path.read_bytes()).splitlines() if ln.strip()]
        genre_names = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    rows = []
    if item_path.is_file():
        for line in _decode(item_path.read_bytes()).splitlines():
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 5 + len(genre_names):
                raise DatasetError(f"{item_path}: malformed line {line!r}")
            flags = parts[5 : 5 + len(genre_names)]
            genres = "|".join(g for g, f in zip(genre_names, flags, strict=True) if f == "1")
            rows.append((int(parts[0]), parts[1], parts[2], genres.replace("unknown", "")))
    frame = pd.DataFrame(rows, columns=["movie_id", "title", "release", "genres"])
    title, year = split_title_year(frame["title"])
    release_year = pd.to_datetime(frame["release"], format="%d-%b-%Y", errors="coerce").dt.year
    movies = pd.DataFrame(
        {
            "movie_id": frame["movie_id"].astype(np.int64),
            "title": title,
            "year": year.fillna(release_year.astype("Int64")),
            "genres": frame["genres"].str.strip("|"),
        }
    )
    return ratings, canonical_movies(movies)


def _decode(data: bytes) -> str:
    """UTF-8 where valid, else latin-1 (ml-100k and ml-1m are latin-1)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing columns {missing} (found {list(frame.columns)})")
