"""`training build --feedback URL`: stored ratings from the service's database join the data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from app.db.migrate import upgrade
from tests.conftest import write_movielens_csv
from training.bundle import read_bundle
from training.cli import app


def test_build_merges_stored_ratings(tmp_path: Path) -> None:
    data = write_movielens_csv(tmp_path / "ml-mini")
    database = tmp_path / "feedback.db"
    upgrade(f"sqlite+aiosqlite:///{database}")
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO ratings (user_id, movie_id, rating, rated_at) VALUES (?, ?, ?, ?)",
            [
                (9_000_000_000, 2, 5.0, "2024-05-01 10:00:00"),  # a new user
                (9_000_000_000, 4, 4.5, "2024-05-01 10:00:00"),
                (1, 999, 3.0, "2024-05-01 10:00:00"),  # a movie the catalog lacks
            ],
        )
        connection.executemany(
            "INSERT INTO events (user_id, movie_id, kind, at) VALUES (?, ?, ?, '2024-05-01')",
            [
                (7_000_000_000, 3, "click"),  # a user known only from events
                (7_000_000_000, 3, "finish"),  # same movie: the strongest signal counts
                (7_000_000_000, 5, "view"),
                (9_000_000_000, 2, "play"),  # a rated movie: the rating says more
                (7_000_000_000, 999, "view"),  # a movie the catalog lacks
            ],
        )
    original = (tmp_path / "ml-mini" / "ratings.csv").read_text().splitlines()[1].split(",")
    user, movie = int(original[0]), int(original[1])
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO ratings (user_id, movie_id, rating, rated_at) VALUES (?, ?, 0.5, '2024-05-02')",
            (user, movie),
        )
    out = tmp_path / "artifacts"
    result = CliRunner().invoke(
        app,
        ["build", "--data", str(data), "--out", str(out), "--tune", "off", "--device", "cpu",
         "--feedback", f"sqlite+aiosqlite:///{database}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "current" / "manifest.json").read_text())
    assert manifest["feedback"] == {
        "ratings": 3, "replaced_dataset_ratings": 1, "dropped_unknown_movies": 1,
        "dropped_unknown_movie_events": 1, "events": 5, "signals": 2,
    }  # fmt: skip
    assert manifest["counts"]["signals"] == 2
    bundle = read_bundle(out)
    # The events-only user was trained on their signals: ALS factors, no ratings.
    signal_row = int(list(bundle.user_ids).index(7_000_000_000))
    assert bundle.history.indptr[signal_row + 1] == bundle.history.indptr[signal_row]
    assert np.linalg.norm(bundle.ranker.als.user_factors[signal_row]) > 0
    row = int(list(bundle.user_ids).index(9_000_000_000))
    start, end = bundle.history.indptr[row], bundle.history.indptr[row + 1]
    assert sorted(bundle.history.indices[start:end].tolist()) == [1, 3]  # movies 2 and 4
    user_row = int(list(bundle.user_ids).index(user))
    ratings = dict(zip(
        bundle.history.indices[bundle.history.indptr[user_row]: bundle.history.indptr[user_row + 1]].tolist(),
        bundle.history.data[bundle.history.indptr[user_row]: bundle.history.indptr[user_row + 1]].tolist(),
        strict=True,
    ))  # fmt: skip
    assert ratings[movie - 1] == 0.5  # the stored rating won


def test_unreadable_feedback_database_is_a_clear_error(tmp_path: Path) -> None:
    data = write_movielens_csv(tmp_path / "ml-mini")
    result = CliRunner().invoke(
        app,
        ["build", "--data", str(data), "--out", str(tmp_path / "a"), "--tune", "off", "--device", "cpu",
         "--feedback", f"sqlite+aiosqlite:///{tmp_path}/empty.db"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot read feedback" in result.output
