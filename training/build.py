"""The build pipeline: dataset -> tuned models -> tables -> verified bundle."""

from __future__ import annotations

import itertools
import logging
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.bundle import Bundle, write_bundle
from training.config import BuildConfig
from training.datasets import Dataset
from training.interactions import IdIndex, user_item_matrix
from training.metrics import holdout_split, ranking_metrics, top_lists
from training.models.als import ALSConfig, ALSModel
from training.models.ease import EASEConfig, fit_ease
from training.models.popularity import charts, movie_stats
from training.models.predictor import RatingPredictor, drift_offset
from training.models.similar import similar_movies
from training.scoring import Ranker

log = logging.getLogger(__name__)

Step = Callable[[str], None]


class Laps:
    """Seconds per build stage for the manifest: `lap("name")` closes the stage under way."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._clock, 3)
        self._clock = now


@dataclass
class RankingFit:
    ranker: Ranker
    validation: dict[str, Any]
    ease_config: EASEConfig


def build(
    dataset: Dataset,
    out: Path,
    config: BuildConfig,
    step: Step | None = None,
    feedback: dict[str, int] | None = None,
) -> Path:
    """Fit everything on `dataset` and write a bundle under `out`; returns its directory."""
    say = step or (lambda message: log.info(message))
    lap = Laps()

    ratings = dataset.ratings
    movie_index = IdIndex.of(dataset.movies["movie_id"])
    user_index = IdIndex.of(np.concatenate([ratings["user_id"], dataset.signals["user_id"]]))
    history = user_item_matrix(ratings, user_index, movie_index)
    signals = user_item_matrix(dataset.signals, user_index, movie_index, dataset.signals["weight"].to_numpy())
    scale = dataset.rating_scale
    lap("index")

    # The "rating" lap is what the rating model adds after ranking.
    offset = drift_offset(ratings, config.rating.recent_days)
    fit_rating = partial(RatingPredictor.fit, history, config.rating, scale, offset)
    beside = rating_beside_ranking(config, len(ratings))
    with ThreadPoolExecutor(max_workers=1) as pool:
        rating_future = pool.submit(fit_rating) if beside else None
        say("fitting ranking models" + (" (and the rating model beside them)" if beside else ""))
        fit = fit_ranking(ratings, user_index, movie_index, history, scale, config, say, signals)
        lap("ranking")
        rating_model = rating_future.result() if rating_future is not None else fit_rating()
    lap("rating")

    say("popularity charts and similar movies")
    stats = movie_stats(ratings, movie_index.ids, config.popularity)
    lap("stats")
    return write_tables_and_bundle(
        out,
        Fitted(
            dataset={
                "name": dataset.name,
                "layout": dataset.layout,
                "checksum": dataset.checksum,
                "rating_scale": list(scale),
            },
            movies=dataset.movies,
            stats=stats,
            user_ids=user_index.ids,
            history=history,
            ranker=fit.ranker,
            rating_model=rating_model,
            ease_config=fit.ease_config,
            validation=fit.validation,
            signals=int(signals.nnz),
        ),
        config,
        say,
        {"feedback": feedback, "device": config.device, "engine": "local"},
        lap,
    )


@dataclass
class Fitted:
    """What an engine hands over: the fitted models and per-movie stats, in index order."""

    dataset: dict[str, Any]  # name, layout, checksum, rating_scale
    movies: pd.DataFrame  # canonical movies, sorted by movie_id (the catalog positions)
    stats: pd.DataFrame  # movie_stats(): one row per movie, same order
    user_ids: np.ndarray  # sorted: the rows of `history` and of the user factors
    history: sp.csr_matrix  # users x movies ratings
    ranker: Ranker
    rating_model: RatingPredictor
    ease_config: EASEConfig | None
    validation: dict[str, Any]
    signals: int = 0


def write_tables_and_bundle(
    out: Path,
    fitted: Fitted,
    config: BuildConfig,
    say: Step,
    extra: dict[str, Any],
    lap: Laps,
) -> Path:
    """Charts and similar movies from the fitted models, then the bundle and its manifest.
    Shared by every engine, so their bundles are alike."""
    movies = fitted.movies.reset_index(drop=True).merge(fitted.stats, on="movie_id", how="left")
    chart_rows = charts(fitted.stats, movies["genres"])
    counts = np.diff(fitted.history.tocsc().indptr)
    device: Literal["cpu", "gpu"] = "gpu" if config.device == "gpu" else "cpu"
    positions, scores = similar_movies(
        fitted.ranker.als.item_factors,
        counts >= config.similar_min_ratings,
        config.similar_n,
        device=device,
    )
    top_positions, top_scores = fitted.ranker.best_unseen(
        fitted.ranker.als.user_factors, fitted.history, config.user_top_depth, device
    )
    lap("tables")
    bundle = Bundle(
        path=out,
        manifest={},
        movies=movies,
        charts=chart_rows,
        user_ids=fitted.user_ids,
        history=fitted.history,
        similar_positions=positions,
        similar_scores=scores,
        user_top_positions=top_positions,
        user_top_scores=top_scores,
        ranker=fitted.ranker,
        rating_model=fitted.rating_model,
    )
    manifest = {
        "dataset": fitted.dataset,
        "counts": {
            "ratings": int(fitted.history.nnz),
            "users": len(fitted.user_ids),
            "movies": len(movies),
            "rated_movies": int((counts > 0).sum()),
            "signals": fitted.signals,
        },
        "config": {
            **config.model_dump(mode="json"),
            "als": fitted.ranker.als.config.model_dump(mode="json"),
            "ease": fitted.ease_config.model_dump(mode="json") if fitted.ease_config else None,
        },
        "metrics": {"validation": fitted.validation},
        **extra,
        "timings_s": lap.timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    say("writing bundle")
    return write_bundle(out, bundle, manifest)


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


def resolve_device(requested: str) -> Literal["cpu", "gpu"]:
    """'auto' -> 'gpu' when implicit's CUDA extension works here, else 'cpu'."""
    if requested == "cpu":
        return "cpu"
    import implicit.gpu

    if implicit.gpu.HAS_CUDA:
        return "gpu"
    if requested == "gpu":
        raise DeviceError(
            "--device gpu: implicit's CUDA extension is not usable here (no GPU, or the CUDA/RMM "
            "libraries it needs are missing); use --device cpu or auto"
        )
    return "cpu"


def use_ease(config: BuildConfig, n_items: int) -> bool:
    if config.use_ease == "auto":
        return n_items <= 4 * config.ease.max_items  # cube cost: only for moderate catalogs
    return config.use_ease == "on"


def rating_beside_ranking(config: BuildConfig, n_ratings: int) -> bool:
    """Whether the rating model (independent of the ranking models) is fitted in a second
    thread beside them; their heavy parts release the GIL.

    Yes while the ranking stage leaves cores idle: tuning is a grid of small ALS fits
    (ml-latest-small built in 31-35 s so, 44 s in turn, a scratch edit), and a GPU fit leaves
    every core idle (the ml-25m-shaped build saves the rating model's 2.4 s, README, Build).
    No for one large ALS fit on the CPU, which keeps every core busy: side by side the two
    fought over them, and the ml-25m-shaped build's ranking stage took 68-87 s, against
    63 + 12 s in turn."""
    return should_tune(config, n_ratings) or config.device == "gpu"


def should_tune(config: BuildConfig, n_ratings: int) -> bool:
    if config.tune.enabled == "auto":
        return n_ratings <= config.tune.max_ratings
    return config.tune.enabled == "on"


def fit_ranking(
    ratings: pd.DataFrame,
    users: IdIndex,
    movies: IdIndex,
    history: sp.csr_matrix,
    scale: tuple[float, float],
    config: BuildConfig,
    say: Step,
    signals: sp.csr_matrix | None = None,
) -> RankingFit:
    """Tune ALS, EASE and the blend on a validation split of the ratings, then refit on all the
    data, ALS with the event signals (weights in (0, 1], see training.signals) added."""
    als_config = config.als
    ease_config = config.ease
    with_ease = use_ease(config, len(movies))
    weights = (1.0, 0.0)
    validation: dict[str, Any] = {"tuned": False}
    if should_tune(config, len(ratings)):
        tuned = tune(ratings, users, movies, scale, config, with_ease, say)
        als_config, ease_config, weights, validation = tuned
        # EASE's penalty competes with XᵀX, whose entries grow with the number of ratings, so
        # λ tuned on the (1 - f) training part is scaled up for the refit on everything. ALS's
        # data term sums over every user x movie cell (unobserved ones weigh 1), which the
        # per-user split leaves unchanged, so its regularisation carries over as it is.
        grow = 1.0 / (1.0 - config.tune.validation_fraction)
        ease_config = ease_config.model_copy(update={"regularization": ease_config.regularization * grow})
        validation["refit_regularization_scale"] = grow
    als = ALSModel.fit_ratings(history, als_config, scale[1], config.device, signals)
    ease = fit_ease(_binary(history), ease_config) if with_ease and weights[1] > 0 else None
    ranker = Ranker(als, ease, weights[0], weights[1] if ease is not None else 0.0, scale[1])
    return RankingFit(ranker, validation, ease_config)


def tune(
    ratings: pd.DataFrame,
    users: IdIndex,
    movies: IdIndex,
    scale: tuple[float, float],
    config: BuildConfig,
    with_ease: bool,
    say: Step,
) -> tuple[ALSConfig, EASEConfig, tuple[float, float], dict[str, Any]]:
    grid = config.tune
    train, valid = holdout_split(ratings, grid.validation_fraction, grid.seed)
    train_m = user_item_matrix(train, users, movies)
    valid_m = user_item_matrix(valid, users, movies)

    def ndcg(scorer: Scorer) -> float:
        return ranking_metrics(top_lists(scorer, train_m, 10), valid_m, len(movies)).ndcg

    results: list[dict[str, Any]] = []
    best_als: tuple[float, ALSConfig, ALSModel] | None = None

    def try_als(exponent: float, reg: float, alpha: float) -> None:
        nonlocal best_als
        point = {"activity_exponent": exponent, "regularization": reg, "alpha": alpha}
        candidate = config.als.model_copy(update={**point, "factors": grid.als_factors})
        model = ALSModel.fit_ratings(train_m, candidate, scale[1], config.device)
        value = ndcg(_dense_if_small(_als_scorer(model), train_m.shape))
        results.append({"model": "als", **point, "ndcg": value})
        say(f"  als activity^{exponent:g} reg={reg:g} alpha={alpha:g}: nDCG@10 {value:.4f}")
        if best_als is None or value > best_als[0]:
            best_als = (value, candidate, model)

    # The penalty and weight are tuned at the first activity exponent, the other exponents
    # tried at the chosen pair: one fit each instead of a whole grid.
    first, *others = grid.als_activity_exponent
    for reg, alpha in itertools.product(grid.als_regularization, grid.als_alpha):
        try_als(first, reg, alpha)
    assert best_als is not None
    chosen = best_als[1]
    for exponent in others:
        try_als(exponent, chosen.regularization, chosen.alpha)
    als_ndcg, als_config, als_model = best_als
    als_scorer = _dense_if_small(_als_scorer(als_model), train_m.shape)

    ease_config = config.ease
    weights = (1.0, 0.0)
    best_blend = als_ndcg
    if with_ease:
        binary = _binary(train_m)
        for reg in grid.ease_regularization:
            candidate_e = config.ease.model_copy(update={"regularization": reg})
            ease_weights = fit_ease(binary, candidate_e)
            ease_scorer = _dense_if_small(_ease_scorer(binary, ease_weights), train_m.shape)
            for w in grid.blend_als_weight:
                value = ndcg(_blend_scorer(als_scorer, ease_scorer, w))
                results.append({"model": "blend", "ease_regularization": reg, "als_weight": w, "ndcg": value})
                if value > best_blend:
                    best_blend, ease_config, weights = value, candidate_e, (w, 1 - w)
            say(f"  ease reg={reg:g}: best blend so far nDCG@10 {best_blend:.4f}")
    popularity = np.asarray(train_m.getnnz(axis=0), dtype=np.float32)
    pop_ndcg = ndcg(lambda rows: np.tile(popularity, (len(rows), 1)))
    summary = {
        "tuned": True,
        "protocol": f"holdout {grid.validation_fraction:g} per user, seed {grid.seed}",
        "ndcg@10": {"served": best_blend, "als": als_ndcg, "popularity": pop_ndcg},
        "chosen": {
            "als": als_config.model_dump(mode="json", exclude={"activity_reference"}),  # set by the refit
            "ease_regularization": ease_config.regularization if weights[1] else None,
            "als_weight": weights[0],
            "ease_weight": weights[1],
        },
        "grid": results,
    }
    return als_config, ease_config, weights, summary


Scorer = Callable[[np.ndarray], np.ndarray]


def _als_scorer(model: ALSModel) -> Scorer:
    return lambda rows: model.user_factors[rows] @ model.item_factors.T


def _ease_scorer(binary: sp.csr_matrix, ease: sp.csr_matrix) -> Scorer:
    return lambda rows: (binary[rows] @ ease).toarray()


def _blend_scorer(als: Scorer, ease: Scorer, als_weight: float) -> Scorer:
    return lambda rows: als_weight * als(rows) + (1 - als_weight) * ease(rows)


def _dense_if_small(scorer: Scorer, shape: tuple[int, int], limit: int = 50_000_000) -> Scorer:
    """Score every user once when users x movies is small; the grid then reuses the scores."""
    if shape[0] * shape[1] > limit:
        return scorer
    scores = np.asarray(scorer(np.arange(shape[0])), dtype=np.float32)
    return lambda rows: scores[rows]


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    binary = matrix.copy()
    binary.data = np.ones_like(binary.data)
    return binary
