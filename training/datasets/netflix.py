"""Netflix Prize data: the original files and the one-file sample.

Original: training_set/mv_*.txt or combined_data_*.txt ('MovieID:' line, then
'CustomerID,Rating,YYYY-MM-DD' lines), movie_titles.csv (latin-1, no header, year may be
'NULL', titles with unquoted commas), probe.txt and qualifying.txt.
Sample: one CSV 'customer_id,rating,rating_date,movie_id,release_year,title'.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from training.datasets.canonical import (
    Dataset,
    DatasetError,
    canonical_movies,
    canonical_ratings,
    complete_movies,
)

SAMPLE_HEADER = "customer_id,rating,rating_date,movie_id,release_year,title"
_FILES_PER_CHUNK = 500


def detect(directory: Path) -> str | None:
    if (directory / "training_set").is_dir() or sorted(directory.glob("combined_data_*.txt")):
        return "netflix-original"
    if sorted(directory.glob("mv_*.txt")):
        return "netflix-original"
    return None


def is_sample_file(path: Path) -> bool:
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    return first == SAMPLE_HEADER


def load_sample(path: Path, name: str) -> Dataset:
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines or lines[0].strip().lstrip("\ufeff") != SAMPLE_HEADER:
        raise DatasetError(f"{path}: expected header {SAMPLE_HEADER!r}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",", 5)  # titles may hold unquoted commas: split 5 times only
        if len(parts) != 6:
            raise DatasetError(f"{path}:{number}: expected 6 fields, got {len(parts)}")
        rows.append(parts)
    frame = pd.DataFrame(rows, columns=SAMPLE_HEADER.split(","))
    try:
        timestamps = _unix_seconds(pd.to_datetime(frame["rating_date"], format="%Y-%m-%d"))
        ratings = canonical_ratings(
            pd.to_numeric(frame["customer_id"]),
            pd.to_numeric(frame["movie_id"]),
            pd.to_numeric(frame["rating"]),
            timestamps,
        )
    except ValueError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    titles = frame.drop_duplicates("movie_id")
    movies = canonical_movies(
        pd.DataFrame(
            {
                "movie_id": pd.to_numeric(titles["movie_id"]),
                "title": titles["title"].str.strip().str.strip('"'),
                "year": pd.to_numeric(titles["release_year"], errors="coerce"),
            }
        )
    )
    return Dataset(name, "netflix-sample", ratings, movies, (1.0, 5.0))


def load_original(directory: Path, name: str) -> Dataset:
    rating_files = _rating_files(directory)
    if not rating_files:
        raise DatasetError(f"{directory}: no Netflix rating files found")
    frames = [_parse_rating_blocks(chunk) for chunk in _read_chunks(rating_files)]
    ratings = pd.concat(frames, ignore_index=True)
    if ratings.empty:
        raise DatasetError(f"{directory}: no ratings found")

    titles_path = directory / "movie_titles.csv"
    if not titles_path.is_file() and (directory / "download" / "movie_titles.txt").is_file():
        titles_path = directory / "download" / "movie_titles.txt"
    movies = (
        read_movie_titles(titles_path)
        if titles_path.is_file()
        else canonical_movies(pd.DataFrame({"movie_id": pd.Series(dtype="int64"), "title": []}))
    )
    dataset = Dataset(name, "netflix-original", ratings, complete_movies(ratings, movies), (1.0, 5.0))
    if (directory / "probe.txt").is_file():
        dataset.probe = read_movie_blocks(directory / "probe.txt", with_date=False)
    if (directory / "qualifying.txt").is_file():
        dataset.qualifying = read_movie_blocks(directory / "qualifying.txt", with_date=True)
    return dataset


def read_movie_titles(path: Path) -> pd.DataFrame:
    """movie_titles.csv: latin-1, 'MovieID,YearOfRelease,Title'; split on the first two commas."""
    rows = []
    for number, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(",", 2)
        if len(parts) != 3 or not parts[0].strip().isdigit():
            raise DatasetError(f"{path}:{number}: expected 'MovieID,YearOfRelease,Title'")
        rows.append(parts)
    frame = pd.DataFrame(rows, columns=["movie_id", "year", "title"])
    frame["year"] = frame["year"].replace("NULL", None)
    return canonical_movies(frame.assign(movie_id=pd.to_numeric(frame["movie_id"])))


def read_movie_blocks(path: Path, *, with_date: bool) -> pd.DataFrame:
    """probe.txt / qualifying.txt: 'MovieID:' lines, each followed by customer lines."""
    users: list[int] = []
    movies: list[int] = []
    dates: list[str] = []
    movie = -1
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.endswith(":"):
            movie = int(line[:-1])
            continue
        if movie < 0:
            raise DatasetError(f"{path}:{number}: customer line before any 'MovieID:' line")
        fields = line.split(",")
        users.append(int(fields[0]))
        movies.append(movie)
        if with_date:
            dates.append(fields[1])
    frame = pd.DataFrame({"user_id": np.asarray(users, np.int64), "movie_id": np.asarray(movies, np.int64)})
    if with_date:
        frame["timestamp"] = _unix_seconds(pd.to_datetime(pd.Series(dates), format="%Y-%m-%d"))
    return frame


def _rating_files(directory: Path) -> list[Path]:
    combined = sorted(directory.glob("combined_data_*.txt"))
    if combined:
        return combined
    folder = directory / "training_set" if (directory / "training_set").is_dir() else directory
    return sorted(folder.glob("mv_*.txt"))


def _read_chunks(files: list[Path]) -> Iterator[bytes]:
    """Combined files one at a time; the 17,770 per-movie files in groups."""
    if files[0].name.startswith("combined_data_"):
        for path in files:
            yield path.read_bytes()
        return
    for start in range(0, len(files), _FILES_PER_CHUNK):
        yield b"".join(_with_newline(p.read_bytes()) for p in files[start : start + _FILES_PER_CHUNK])


def _with_newline(data: bytes) -> bytes:
    return data if data.endswith(b"\n") else data + b"\n"


def _parse_rating_blocks(data: bytes) -> pd.DataFrame:
    """Parse 'MovieID:' blocks at C speed.

    Header lines 'N:' become 'N,,' so every line has three fields; pyarrow then parses the
    whole buffer and the header rows (null rating) give the movie id to forward-fill.
    """
    data = data.replace(b"\r\n", b"\n").replace(b":\n", b",,\n")
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=["id", "rating", "date"]),
            convert_options=pacsv.ConvertOptions(
                column_types={"id": pa.int64(), "rating": pa.float32(), "date": pa.timestamp("s")}
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DatasetError(f"malformed Netflix rating file: {exc}") from exc
    ids = table.column("id").to_numpy()
    rating = table.column("rating").to_numpy(zero_copy_only=False)
    header = np.isnan(rating)
    if len(ids) and not header[0]:
        raise DatasetError("malformed Netflix rating file: does not start with a 'MovieID:' line")
    block = np.cumsum(header) - 1
    movie = ids[header][block]
    keep = ~header
    dates = table.column("date").to_numpy(zero_copy_only=False)
    return canonical_ratings(
        ids[keep], movie[keep], rating[keep], dates[keep].astype("datetime64[s]").astype(np.int64)
    )


def _unix_seconds(dates: pd.Series | Iterable[object]) -> np.ndarray:
    series = pd.Series(dates)
    return series.to_numpy(dtype="datetime64[s]").astype(np.int64)
