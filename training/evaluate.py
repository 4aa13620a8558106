"""Offline evaluation: ranking (holdout) and rating (kfold, time, probe) protocols, JSON and plots.

- holdout: per user a random 20% of their ratings (seed 0) held out; every held-out movie is
  relevant; movies seen in training are never recommended. Models are tuned exactly as
  `build` tunes them, on a validation split carved from the training part only.
- kfold: 5-fold RMSE/MAE of the rating predictors.
- time: fit on ratings up to year T-2, tune on T-1, refit up to T-1 and report year T (the
  customary Netflix-sample protocol, T = the last year of the data).
- probe: the Netflix Prize's original files: RMSE on probe.txt's ratings, the models fitted
  on the rest (see `probe_split` for the tuning part).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.build import fit_ranking
from training.bundle import Bundle
from training.config import BuildConfig
from training.datasets import Dataset
from training.interactions import IdIndex, user_item_matrix
from training.metrics import (
    holdout_split,
    interval,
    kfold_splits,
    mae,
    ranking_metrics,
    rmse,
    top_lists,
    user_ndcg,
)
from training.models.knn import ItemKNN, KNNConfig
from training.models.predictor import PredictorConfig, RatingPredictor, drift_offset
from training.models.rating import RatingModel

Say = Callable[[str], None]
CUTOFFS = list(range(1, 21))


def evaluate_holdout(dataset: Dataset, config: BuildConfig, say: Say, seed: int = 0) -> dict[str, Any]:
    ratings = dataset.ratings
    users = IdIndex.of(ratings["user_id"])
    movies = IdIndex.of(dataset.movies["movie_id"])
    train, test = holdout_split(ratings, 0.2, seed)
    train_m = user_item_matrix(train, users, movies)
    test_m = user_item_matrix(test, users, movies)
    fit = fit_ranking(train, users, movies, train_m, dataset.rating_scale, config, say)
    ranker = fit.ranker
    popularity = np.asarray(train_m.getnnz(axis=0), dtype=np.float32)

    scorers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "popularity": lambda rows: np.tile(popularity, (len(rows), 1)),
        "als": lambda rows: ranker.als.user_factors[rows] @ ranker.als.item_factors.T,
    }
    if ranker.ease is not None:
        binary = train_m.copy()
        binary.data[:] = 1
        ease = ranker.ease
        scorers["ease"] = lambda rows: (binary[rows] @ ease).toarray()
        scorers["served"] = lambda rows: ranker.scores(ranker.als.user_factors[rows], train_m[rows])

    models: dict[str, Any] = {}
    for name, scorer in scorers.items():
        top = top_lists(scorer, train_m, max(CUTOFFS))
        at_10 = ranking_metrics(top[:, :10], test_m, len(movies)).as_dict()
        curve = [ranking_metrics(top[:, :k], test_m, len(movies)).ndcg for k in CUTOFFS]
        ci = interval(user_ndcg(top[:, :10], test_m), seed=seed)
        models[name] = {"at_10": at_10, "ndcg_ci95": ci, "ndcg_curve": curve}
        say(f"  {name:<10} nDCG@10 {at_10['ndcg']:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f})  "
            f"P@10 {at_10['precision']:.4f}  MAP@10 {at_10['map']:.4f}  "
            f"coverage {at_10['coverage']:.3f}")  # fmt: skip
    if "served" not in models:
        models["served"] = models["als"]
    return {
        "protocol": "holdout",
        "description": f"per user 20% of ratings held out (seed {seed}); held-out movies relevant; "
        "seen movies never recommended; tuned on a validation split of the training part; "
        "95% CI: bootstrap over the test users",
        "cutoffs": CUTOFFS,
        "models": models,
        "chosen": fit.validation.get("chosen"),
        "long_tail": _long_tail(ratings),
    }


def bundle_ndcg(bundle: Bundle, test: pd.DataFrame, k: int = 10) -> float:
    """nDCG@k of a bundle's ALS ranking on held-out ratings (canonical columns); the bundle's
    own history is what each user has seen."""
    als = bundle.ranker.als
    relevant = user_item_matrix(test, IdIndex(bundle.user_ids), IdIndex.of(bundle.movies["movie_id"]))
    top = top_lists(lambda rows: als.user_factors[rows] @ als.item_factors.T, bundle.history, k)
    return ranking_metrics(top, relevant, relevant.shape[1]).ndcg


def evaluate_kfold(
    dataset: Dataset, config: BuildConfig, say: Say, seed: int = 0, folds: int = 5
) -> dict[str, Any]:
    ratings = dataset.ratings
    users = IdIndex.of(ratings["user_id"])
    movies = IdIndex.of(dataset.movies["movie_id"])
    per_model: dict[str, list[tuple[float, float]]] = {}
    for number, test_mask in enumerate(kfold_splits(ratings, folds, seed)):
        train = ratings[~test_mask]
        test = ratings[test_mask]
        train_m = user_item_matrix(train, users, movies)
        u = users.positions(test["user_id"].to_numpy())
        i = movies.positions(test["movie_id"].to_numpy())
        actual = test["rating"].to_numpy(np.float64)
        offset = drift_offset(train, config.rating.recent_days)
        predictions = _rating_predictions(train_m, u, i, config.rating, dataset.rating_scale, offset)
        for name, predicted in predictions.items():
            per_model.setdefault(name, []).append((rmse(predicted, actual), mae(predicted, actual)))
        say(f"  fold {number + 1}/{folds}: " + ", ".join(f"{n} {v[-1][0]:.4f}" for n, v in per_model.items()))
    models = {
        name: {
            "rmse": float(np.mean([r for r, _ in values])),
            "mae": float(np.mean([m for _, m in values])),
            "rmse_per_fold": [r for r, _ in values],
        }
        for name, values in per_model.items()
    }
    description = f"{folds}-fold random split of all ratings (seed {seed})"
    return {"protocol": "kfold", "description": description, "models": models}


def evaluate_time(dataset: Dataset, config: BuildConfig, say: Say, seed: int = 0) -> dict[str, Any]:
    """`seed` is not used: the split is by year."""
    ratings = dataset.ratings
    years = pd.to_datetime(ratings["timestamp"], unit="s").dt.year.to_numpy()
    last = int(years.max())
    fit_part, tune_part, test_part = years <= last - 2, years == last - 1, years == last
    if not (fit_part.any() and tune_part.any() and test_part.any()):
        raise ValueError(f"the time protocol needs ratings in {last - 2} or before, {last - 1} and {last}")
    report = _tuned_rating_report(dataset, config, say, (fit_part, tune_part, test_part), str(last - 1))
    _say_figures(report, say, f"on {last}")
    return {
        "protocol": "time",
        "description": f"fit <= {last - 2}, tune on {last - 1}, refit <= {last - 1}, test {last}; "
        "95% CI: bootstrap over the test ratings",
        **report,
    }


def evaluate_probe(dataset: Dataset, config: BuildConfig, say: Say, seed: int = 0) -> dict[str, Any]:
    """The Netflix Prize's own split: RMSE on probe.txt's ratings (`seed` is not used)."""
    if dataset.probe.empty:
        raise ValueError("the probe protocol needs the Netflix Prize's probe.txt beside its original files")
    ratings = dataset.ratings.reset_index(drop=True)
    parts = probe_split(ratings, dataset.probe)
    if not parts[2].any():
        raise ValueError("none of probe.txt's pairs is among the ratings")
    report = _tuned_rating_report(
        replace(dataset, ratings=ratings), config, say, parts, "the probe users' latest other ratings"
    )
    _say_figures(report, say, "on the probe")
    return {
        "protocol": "probe",
        "description": "fit on the ratings outside probe.txt, tune on each probe user's latest "
        "ratings outside it (as many as they have in it), refit without the probe, test the probe; "
        "95% CI: bootstrap over the probe ratings",
        **report,
    }


def probe_split(ratings: pd.DataFrame, probe: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks over `ratings` (fit, tune, test): test is the probe's pairs; tune holds, for each
    user in the probe, their latest ratings outside it, as many as they have in it: the way
    Netflix drew the probe from each user's latest ratings, one step further back."""
    width = int(max(ratings["movie_id"].max(), probe["movie_id"].max())) + 1
    keys = ratings["user_id"].to_numpy(np.int64) * width + ratings["movie_id"].to_numpy(np.int64)
    probe_keys = probe["user_id"].to_numpy(np.int64) * width + probe["movie_id"].to_numpy(np.int64)
    test = np.isin(keys, probe_keys)
    in_probe = ratings.loc[test, "user_id"].value_counts()
    rest = ratings.loc[~test, ["user_id", "timestamp"]].sort_values(
        ["user_id", "timestamp"], ascending=[True, False], kind="stable"
    )
    latest = rest.groupby("user_id").cumcount().to_numpy()
    wanted = rest["user_id"].map(in_probe).fillna(0).to_numpy()
    tune = np.zeros(len(ratings), dtype=bool)
    tune[rest.index[latest < wanted]] = True
    return ~(test | tune), tune, test


# The rating model's grid, tuned by `time` and `probe` on their tune part: the penalties of the
# biases and of the factors (a fit each), and whether to follow the drift of the mean (an offset
# on each fit's predictions): 20 fits, 40 settings.
MF_GRID = list(itertools.product((1.0, 5.0, 15.0, 30.0), (0.05, 0.14, 0.3, 0.6, 1.2)))
DRIFT_GRID: tuple[float | None, ...] = (None, 365.0)


def _tuned_rating_report(
    dataset: Dataset,
    config: BuildConfig,
    say: Say,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    tuned_on: str,
) -> dict[str, Any]:
    """Tune the rating models on `tune` with `fit`, refit on both and report on `test`."""
    fit_part, tune_part, test_part = parts
    ratings = dataset.ratings
    users = IdIndex.of(ratings["user_id"])
    movies = IdIndex.of(dataset.movies["movie_id"])
    scale = dataset.rating_scale
    fit_knn = _SharedKNNFits()

    def pairs(train_mask: np.ndarray, test_mask: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """The training matrix, and the test part's user and movie positions (-1: a user
        without ratings in the training part)."""
        train_m = user_item_matrix(ratings[train_mask], users, movies)
        test = ratings[test_mask]
        u = users.positions(test["user_id"].to_numpy())
        u = np.where(np.isin(u, np.unique(train_m.nonzero()[0])), u, -1)
        return train_m, u, movies.positions(test["movie_id"].to_numpy())

    # The served model alone on the tune part, one fit per setting of the MF: the drift setting
    # only moves its predictions (its offset), and the kNN part does not depend on the MF.
    train_m, u, i = pairs(fit_part, tune_part)
    actual = ratings.loc[tune_part, "rating"].to_numpy()
    offsets = {recent: drift_offset(ratings[fit_part], recent) for recent in DRIFT_GRID}
    best: tuple[float, PredictorConfig] | None = None
    for bias_reg, reg in MF_GRID:
        mf = config.rating.mf.model_copy(update={"bias_regularization": bias_reg, "regularization": reg})
        candidate = config.rating.model_copy(update={"mf": mf})
        served = RatingPredictor.fit(train_m, candidate, scale, fit_knn=fit_knn)
        for recent in DRIFT_GRID:
            served.offset = offsets[recent]
            value = float(_root_mean((served.predict(u, i, train_m) - actual) ** 2))
            if best is None or value < best[0]:
                best = (value, candidate.model_copy(update={"recent_days": recent}))
    assert best is not None
    chosen = {**best[1].mf.model_dump(), "recent_days": best[1].recent_days}
    say(f"  tuned on {tuned_on}: RMSE {best[0]:.4f} with {chosen}")
    models = {}
    train_m, u, i = pairs(fit_part | tune_part, test_part)
    known = u >= 0
    offset = drift_offset(ratings[fit_part | tune_part], best[1].recent_days)
    actual = ratings.loc[test_part, "rating"].to_numpy()
    for name, predicted in _rating_predictions(train_m, u, i, best[1], scale, offset).items():
        squared = (predicted - actual) ** 2
        value, ci = float(_root_mean(squared)), interval(squared, _root_mean)
        # Users new in the test part get the movie's bias and the mean alone.
        by_user = {
            "rmse_known_users": float(_root_mean(squared[known])) if known.any() else None,
            "rmse_new_users": float(_root_mean(squared[~known])) if (~known).any() else None,
        }
        mae = float(np.mean(np.sqrt(squared)))
        models[name] = {"rmse": value, "rmse_ci95": ci, "mae": mae, **by_user}
    return {
        "models": models,
        "tuned": {"validation_rmse": best[0], "chosen": chosen},
        "test_ratings": int(test_part.sum()),
        "test_ratings_of_known_users": int(known.sum()),
    }


class _SharedKNNFits:
    """`ItemKNN.fit`, each fit kept for the same ratings and settings again: the tuning grid
    refits the served blend for every MF setting, on the same training part and the same
    random split of it for the blend's weights, and the kNN part is the same every time (on
    ml-latest-small its fit took ~3 s against ~0.3 s for the MF's)."""

    def __init__(self) -> None:
        self._fits: dict[tuple[bytes, str], ItemKNN] = {}

    def __call__(self, ratings: sp.csr_matrix, config: KNNConfig) -> ItemKNN:
        digest = hashlib.blake2b(digest_size=16)
        for part in (np.asarray(ratings.shape), ratings.indptr, ratings.indices, ratings.data):
            digest.update(np.ascontiguousarray(part).tobytes())
        key = (digest.digest(), config.model_dump_json())
        if key not in self._fits:
            self._fits[key] = ItemKNN.fit(ratings, config)
        return self._fits[key]


def _say_figures(report: dict[str, Any], say: Say, where: str) -> None:
    for name, model in report["models"].items():
        low, high = model["rmse_ci95"]
        say(f"  {name:<10} RMSE {model['rmse']:.4f} (95% CI {low:.4f}-{high:.4f}) {where}")


def _rating_predictions(
    train: sp.csr_matrix,
    users: np.ndarray,
    items: np.ndarray,
    config: PredictorConfig,
    scale: tuple[float, float],
    offset: float = 0.0,
) -> dict[str, np.ndarray]:
    """Predictions of every rating model on the same pairs: mean, MF, kNN and the served blend."""
    served = RatingPredictor.fit(train, config, scale, offset)
    mean = float(train.data.mean())
    mf = served.mf if served.knn is not None else RatingModel.fit(train, config.mf, scale)
    knn = served.knn or ItemKNN.fit(train, config.knn)
    return {
        "global_mean": np.full(len(users), mean),
        "biased_mf": mf.predict(users, items),
        "item_knn": np.clip(knn.predict(users, items, train), *scale),
        "served": served.predict(users, items, train),
    }


def _root_mean(squared: np.ndarray, axis: int = -1) -> np.ndarray:
    """RMSE from squared errors, along `axis` (as scipy's bootstrap calls it on resamples)."""
    return np.sqrt(np.mean(squared, axis=axis))


def _long_tail(ratings: pd.DataFrame) -> dict[str, Any]:
    counts = np.sort(ratings.groupby("movie_id").size().to_numpy())[::-1]
    share = np.cumsum(counts) / counts.sum()
    head = int(np.searchsorted(share, 0.5)) + 1
    return {
        "movies": len(counts),
        "movies_with_half_the_ratings": head,
        "ratings_per_movie_sorted": counts[:: max(1, len(counts) // 500)].tolist(),
    }


def write_plots(report: dict[str, Any], stem: Path) -> list[Path]:
    """PNG plots beside the JSON report: nDCG@k curves, RMSE per model, the long tail."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if report["protocol"] == "holdout":
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, model in report["models"].items():
            ax.plot(report["cutoffs"], model["ndcg_curve"], marker="o", markersize=3, label=name)
        ax.set(xlabel="k", ylabel="nDCG@k", title=f"{report['dataset']}: nDCG@k (holdout)")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, stem.with_name(stem.name + "_ndcg.png")))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        tail = report["long_tail"]["ratings_per_movie_sorted"]
        ax.plot(np.linspace(0, 1, len(tail)), tail)
        ax.set(yscale="log", xlabel="movies by popularity (fraction)", ylabel="ratings",
               title=f"{report['dataset']}: popularity long tail")  # fmt: skip
        ax.grid(alpha=0.3)
        written.append(_save(fig, stem.with_name(stem.name + "_longtail.png")))
    else:
        names = list(report["models"])
        values = [report["models"][n]["rmse"] for n in names]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        bars = ax.bar(names, values, color="#4c72b0")
        ax.bar_label(bars, fmt="%.4f")
        ax.set(
            ylabel="RMSE",
            title=f"{report['dataset']}: RMSE ({report['protocol']})",
            ylim=(0, max(values) * 1.15),
        )
        written.append(_save(fig, stem.with_name(stem.name + "_rmse.png")))
    plt.close("all")
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


PROTOCOLS: dict[str, Callable[[Dataset, BuildConfig, Say, int], dict[str, Any]]] = {
    "holdout": evaluate_holdout,
    "kfold": evaluate_kfold,
    "time": evaluate_time,
    "probe": evaluate_probe,
}


def run(dataset: Dataset, protocol: str, config: BuildConfig, say: Say, seed: int = 0) -> dict[str, Any]:
    """`seed`: the random split's (holdout, kfold); the customary figures use 0."""
    started = datetime.now(UTC)
    report = PROTOCOLS[protocol](dataset, config, say, seed)
    report.update(
        dataset=dataset.name,
        dataset_checksum=dataset.checksum,
        counts=dataset.counts,
        config=config.model_dump(mode="json"),
        started_at=started.isoformat(),
        seconds=round((datetime.now(UTC) - started).total_seconds(), 1),
    )
    return report
