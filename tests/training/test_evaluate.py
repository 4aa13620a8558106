"""The evaluation protocols run end to end on a small fixture and write JSON-able reports and plots."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import synthetic_ratings, write_movielens_csv
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.evaluate import _SharedKNNFits, probe_split, run, write_plots
from training.interactions import IdIndex, user_item_matrix
from training.models.als import ALSConfig
from training.models.knn import ItemKNN
from training.models.predictor import PredictorConfig, RatingPredictor
from training.models.rating import RatingConfig


def _config() -> BuildConfig:
    return BuildConfig(
        als=ALSConfig(factors=8, iterations=5),
        tune=TuneConfig(als_regularization=[1.0, 5.0], als_alpha=[5.0], ease_regularization=[10.0]),
        rating=PredictorConfig(mf=RatingConfig(factors=4, iterations=4)),
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_dataset(write_movielens_csv(tmp_path_factory.mktemp("ev") / "ml-mini"))


def test_holdout_beats_popularity_and_plots(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = run(dataset, "holdout", _config(), lambda _: None)
    models = report["models"]
    assert set(models) >= {"popularity", "als", "served"}
    assert models["served"]["at_10"]["ndcg"] > models["popularity"]["at_10"]["ndcg"]
    for model in models.values():
        low, high = model["ndcg_ci95"]
        assert low <= model["at_10"]["ndcg"] <= high
    assert len(models["als"]["ndcg_curve"]) == len(report["cutoffs"])
    json.dumps(report)
    plots = write_plots(report, tmp_path / "holdout")
    assert [p.name for p in plots] == ["holdout_ndcg.png", "holdout_longtail.png"]
    assert all(p.stat().st_size > 1000 for p in plots)


def test_the_seed_picks_another_split(tmp_path: Path) -> None:
    """`python -m training evaluate --seed N`: the holdout split (and so its figures) change
    with N; the report says which seed made it."""
    from typer.testing import CliRunner

    from training.cli import app

    data = write_movielens_csv(tmp_path / "ml-mini")
    reports = []
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}.json"
        config = tmp_path / "config.json"
        config.write_text(_config().model_dump_json())
        result = CliRunner().invoke(
            app,
            ["evaluate", "--data", str(data), "--json", str(out), "--config", str(config),
             "--seed", str(seed)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        reports.append(json.loads(out.read_text()))
    assert ["seed 0" in reports[0]["description"], "seed 1" in reports[1]["description"]] == [True, True]
    curves = [r["models"]["als"]["ndcg_curve"] for r in reports]
    assert curves[0] != curves[1]


def test_kfold_reports_every_rating_model(dataset) -> None:  # type: ignore[no-untyped-def]
    report = run(dataset, "kfold", _config(), lambda _: None)
    models = report["models"]
    assert set(models) == {"global_mean", "biased_mf", "item_knn", "served"}
    assert all(len(m["rmse_per_fold"]) == 5 for m in models.values())
    assert models["biased_mf"]["rmse"] < models["global_mean"]["rmse"]


def test_time_protocol(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n = len(dataset.ratings)
    years = pd.Series([2003, 2004, 2005]).repeat(n // 3 + 1).to_numpy()[:n]
    stamps = (
        pd.to_datetime(pd.Series(years).astype(str) + "-06-01") - pd.Timestamp("1970-01-01")
    ) // pd.Timedelta("1s")
    dataset = replace(dataset, ratings=dataset.ratings.assign(timestamp=stamps.to_numpy()))
    report = run(dataset, "time", _config(), lambda _: None)
    assert report["description"].startswith("fit <= 2003, tune on 2004, refit <= 2004, test 2005;")
    assert report["models"]["served"]["rmse"] < report["models"]["global_mean"]["rmse"] + 0.5
    known, total = report["test_ratings_of_known_users"], report["test_ratings"]
    assert 0 < known < total  # the fixture's users are spread over the years
    for model in report["models"].values():
        low, high = model["rmse_ci95"]
        assert low <= model["rmse"] <= high
        assert 0 < model["mae"] <= model["rmse"]
        # The overall figure is the two groups' errors pooled.
        known_part = known * model["rmse_known_users"] ** 2
        new_part = (total - known) * model["rmse_new_users"] ** 2
        assert model["rmse"] == pytest.approx(((known_part + new_part) / total) ** 0.5, rel=1e-5)
    assert write_plots(report, tmp_path / "time")[0].name == "time_rmse.png"


def test_time_protocol_needs_three_years(dataset) -> None:  # type: ignore[no-untyped-def]
    single = replace(dataset, ratings=dataset.ratings.assign(timestamp=1_500_000_000))
    with pytest.raises(ValueError, match="needs ratings"):
        run(single, "time", _config(), lambda _: None)


def test_probe_split_holds_out_the_probe_and_tunes_on_the_latest_ratings_before_it() -> None:
    ratings = pd.DataFrame(
        [(1, m, 3.0, t) for m, t in zip(range(10, 15), range(1, 6), strict=True)]
        + [(2, 10, 4.0, 6), (2, 11, 4.0, 5), (3, 12, 2.0, 1), (3, 13, 2.0, 2)],
        columns=["user_id", "movie_id", "rating", "timestamp"],
    )
    probe = pd.DataFrame({"user_id": [1, 1, 2, 4], "movie_id": [14, 13, 10, 10]})  # (4, 10) not rated
    fit, tune, test = probe_split(ratings, probe)
    pairs = list(zip(ratings["user_id"], ratings["movie_id"], strict=True))

    def chosen(mask: np.ndarray) -> set[tuple[int, int]]:
        return {pair for pair, kept in zip(pairs, mask, strict=True) if kept}

    assert chosen(test) == {(1, 14), (1, 13), (2, 10)}
    # As many of each probe user's latest other ratings as they have in the probe; user 3 has none.
    assert chosen(tune) == {(1, 12), (1, 11), (2, 11)}
    assert chosen(fit) == {(1, 10), (3, 12), (3, 13)}


def _netflix_original(directory: Path) -> Path:
    """The fixture's ratings in the Netflix Prize's original layout, with each user's latest
    rating in probe.txt."""
    ratings = synthetic_ratings().rename(columns={"userId": "user_id", "movieId": "movie_id"})
    ratings["rating"] = ratings["rating"].round().clip(1, 5).astype(int)
    ratings["date"] = pd.to_datetime(ratings["timestamp"], unit="s").dt.strftime("%Y-%m-%d")
    (directory / "training_set").mkdir(parents=True)
    for movie, group in ratings.groupby("movie_id"):
        lines = "".join(f"{u},{r},{d}\n" for u, r, d in group[["user_id", "rating", "date"]].to_numpy())
        (directory / "training_set" / f"mv_{movie:07d}.txt").write_text(f"{movie}:\n{lines}")
    latest = ratings.sort_values("timestamp").groupby("user_id").tail(1)
    probe = "".join(
        f"{movie}:\n" + "".join(f"{u}\n" for u in group["user_id"])
        for movie, group in latest.groupby("movie_id")
    )
    (directory / "probe.txt").write_text(probe)
    return directory


def test_probe_protocol(tmp_path: Path) -> None:
    dataset = load_dataset(_netflix_original(tmp_path / "netflix"))
    assert len(dataset.probe) == 60
    report = run(dataset, "probe", _config(), lambda _: None)
    assert report["protocol"] == "probe"
    assert report["test_ratings"] == report["test_ratings_of_known_users"] == 60
    models = report["models"]
    assert models["served"]["rmse"] < models["global_mean"]["rmse"]  # the two taste groups are learnt
    for model in models.values():
        low, high = model["rmse_ci95"]
        assert low <= model["rmse"] <= high
        assert model["rmse_new_users"] is None  # every probe user has other ratings
    assert json.loads(json.dumps(report))["tuned"]["chosen"]["bias_regularization"] > 0
    assert write_plots(report, tmp_path / "probe")[0].name == "probe_rmse.png"


def test_probe_protocol_needs_the_probe(dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"needs the Netflix Prize's probe\.txt"):
        run(dataset, "probe", _config(), lambda _: None)


def test_the_tuning_grid_fits_the_knn_part_once_for_every_mf_setting() -> None:
    """The served blend refitted with other MF penalties reuses the kNN fits of the same
    ratings (the whole and the blend's split of it), and predicts exactly as if it had fitted
    its own."""
    ratings = synthetic_ratings().rename(columns={"userId": "user_id", "movieId": "movie_id"})
    matrix = user_item_matrix(ratings, IdIndex.of(ratings["user_id"]), IdIndex.of(ratings["movie_id"]))
    scale = (0.5, 5.0)
    fits = _SharedKNNFits()
    users, movies = np.repeat(np.arange(10), 4), np.tile(np.arange(4), 10)
    served = []
    for penalty in (0.05, 0.5):
        config = PredictorConfig(mf=RatingConfig(factors=4, regularization=penalty), min_blend_ratings=10)
        shared = RatingPredictor.fit(matrix.copy(), config, scale, fit_knn=fits)
        own = RatingPredictor.fit(matrix, config, scale, fit_knn=ItemKNN.fit)
        assert shared.knn is not None
        np.testing.assert_array_equal(shared.weights, own.weights)
        predicted = shared.predict(users, movies, matrix)
        np.testing.assert_array_equal(predicted, own.predict(users, movies, matrix))
        served.append(shared)
    assert served[0].knn is served[1].knn
    assert len(fits._fits) == 2  # the whole ratings and the blend's split
    assert not np.array_equal(served[0].weights, served[1].weights)  # the MF settings did differ
