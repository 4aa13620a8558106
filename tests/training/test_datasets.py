"""Loaders: one fixture per real layout, including the documented traps."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from training.datasets import DatasetError, load_dataset
from training.datasets.canonical import MOVIE_COLUMNS, RATING_COLUMNS


def _assert_canonical(dataset) -> None:  # type: ignore[no-untyped-def]
    assert list(dataset.ratings.columns) == RATING_COLUMNS
    assert list(dataset.movies.columns) == MOVIE_COLUMNS
    assert dataset.ratings["user_id"].dtype == np.int64
    assert dataset.ratings["rating"].dtype == np.float32
    assert set(dataset.ratings["movie_id"]) <= set(dataset.movies["movie_id"])


class TestMovieLensCsv:
    def test_directory(self, movielens_dir: Path) -> None:
        data = load_dataset(movielens_dir)
        _assert_canonical(data)
        assert data.layout == "movielens-csv"
        assert data.counts == {"ratings": 720, "users": 60, "movies": 40}
        movie = data.movies.set_index("movie_id").loc[1]
        assert movie["title"] == "Movie 1, The"  # quoted comma kept, year removed
        assert movie["year"] == 1981
        assert movie["imdb_id"] == 100001
        assert movie["tmdb_id"] == 501
        assert data.movies.set_index("movie_id").loc[7, "genres"] == ""  # '(no genres listed)'
        assert data.movies.set_index("movie_id").loc[3, "tmdb_id"] is __import__("pandas").NA

    def test_zip_as_downloaded(self, movielens_dir: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setenv("CINEREC_CACHE", str(tmp_path / "cache"))
        archive = tmp_path / "ml-mini.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            for path in movielens_dir.iterdir():
                bundle.write(path, f"ml-mini/{path.name}")
        data = load_dataset(archive)
        assert data.counts["ratings"] == 720
        assert data.checksum == load_dataset(movielens_dir).checksum

    def test_corrupt_zip_is_a_clear_error(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setenv("CINEREC_CACHE", str(tmp_path / "cache"))
        archive = tmp_path / "broken.zip"
        archive.write_bytes(b"PK\x03\x04 truncated")
        with pytest.raises(DatasetError, match="not a valid zip"):
            load_dataset(archive)

    def test_unknown_name(self) -> None:
        with pytest.raises(DatasetError, match="not a known dataset"):
            load_dataset("ml-does-not-exist")


class TestMovieLensDat:
    def test_ml1m_latin1(self, tmp_path: Path) -> None:
        (tmp_path / "ratings.dat").write_text(
            "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
        )
        (tmp_path / "movies.dat").write_bytes(
            "10::Caf\xe9 Society (1995)::Comedy|Drama\n20::Heat (1995)::Action\n".encode("latin-1")
        )
        data = load_dataset(tmp_path)
        _assert_canonical(data)
        assert data.layout == "movielens-dat"
        movies = data.movies.set_index("movie_id")
        assert movies.loc[10, "title"] == "Café Society"
        assert movies.loc[10, "genres"] == "Comedy|Drama"
        assert data.rating_scale == (3.0, 5.0)


class TestMovieLens100k:
    def test_tab_data_and_genre_flags(self, tmp_path: Path) -> None:
        (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        flags_242 = ["0"] * 19
        flags_242[5] = "1"  # Comedy
        flags_302 = ["0"] * 19
        flags_302[1] = flags_302[16] = "1"  # Action, Thriller
        (tmp_path / "u.item").write_bytes(
            (
                "242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags_242) + "\n"
                "302|L\xe9on (1994)|01-Jan-1994||http://y|" + "|".join(flags_302) + "\n"
            ).encode("latin-1")
        )
        data = load_dataset(tmp_path)
        assert data.layout == "movielens-100k"
        movies = data.movies.set_index("movie_id")
        assert movies.loc[242, "genres"] == "Comedy"
        assert movies.loc[302, "genres"] == "Action|Thriller"
        assert movies.loc[302, "title"] == "Léon"


class TestNetflix:
    def test_sample_file_with_unquoted_commas(self, tmp_path: Path) -> None:
        path = tmp_path / "data_sample.csv"
        path.write_text(
            "customer_id,rating,rating_date,movie_id,release_year,title\n"
            "683427,3,2005-08-17,72,1974,At Home Among Strangers, A Stranger Among His Own\n"
            "2414149,4,2004-02-29,586,1995,Shanghai Triad\n"
        )
        data = load_dataset(path)
        assert data.layout == "netflix-sample"
        assert data.movies.set_index("movie_id").loc[72, "title"] == (
            "At Home Among Strangers, A Stranger Among His Own"
        )
        assert data.ratings["timestamp"].iloc[1] == 1078012800  # 2004-02-29 UTC

    @pytest.mark.parametrize("layout", ["training_set", "combined"])
    def test_original_files(self, tmp_path: Path, layout: str) -> None:
        blocks = {1: "1488844,3,2005-09-06\n822109,5,2005-05-13\n", 2: "1488844,4,2004-01-01\n"}
        if layout == "training_set":
            (tmp_path / "training_set").mkdir()
            for movie, lines in blocks.items():
                (tmp_path / "training_set" / f"mv_{movie:07d}.txt").write_text(f"{movie}:\n{lines}")
        else:
            text = "".join(f"{m}:\n{lines}" for m, lines in blocks.items())
            (tmp_path / "combined_data_1.txt").write_text(text)
        (tmp_path / "movie_titles.csv").write_bytes(
            b"1,2003,Dinosaur Planet\n2,NULL,Ancient Civilizations: Rome, Pompeii\n"
        )
        (tmp_path / "probe.txt").write_text("1:\n822109\n")
        (tmp_path / "qualifying.txt").write_text("2:\n822109,2005-12-01\n")
        data = load_dataset(tmp_path)
        assert data.layout == "netflix-original"
        assert sorted(map(tuple, data.ratings[["user_id", "movie_id", "rating"]].to_numpy().tolist())) == [
            (822109, 1, 5.0), (1488844, 1, 3.0), (1488844, 2, 4.0),
        ]  # fmt: skip
        movies = data.movies.set_index("movie_id")
        assert movies.loc[2, "title"] == "Ancient Civilizations: Rome, Pompeii"
        assert movies.loc[2, "year"] is __import__("pandas").NA
        assert data.probe.to_numpy().tolist() == [[822109, 1]]
        assert data.qualifying[["user_id", "movie_id"]].to_numpy().tolist() == [[822109, 2]]

    def test_malformed_rating_file(self, tmp_path: Path) -> None:
        (tmp_path / "combined_data_1.txt").write_text("1488844,3,2005-09-06\n")
        with pytest.raises(DatasetError, match="MovieID"):
            load_dataset(tmp_path)


def test_unrecognised_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="no known layout"):
        load_dataset(tmp_path)
