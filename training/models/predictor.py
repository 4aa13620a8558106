"""The served rating predictor: biased MF blended with item-kNN, weights fitted on held-out data.

prediction = w₀ + w_mf · MF(u, i) + w_knn · kNN(u, i) (+ a drift offset), clipped to the rating
scale. The weights come from least squares on a random validation part of the ratings (both
models fitted without it), then both models are refitted on everything. With too few ratings to
trust such weights, the MF model is served alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from training.models.knn import ItemKNN, KNNConfig
from training.models.rating import RatingConfig, RatingModel

FitKNN = Callable[[sp.csr_matrix, KNNConfig], ItemKNN]


class PredictorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mf: RatingConfig = RatingConfig()
    # Above `large_ratings` the MF is fitted with `mf_large`: a pass over the ratings costs
    # ratings x factors, and on data the size of ml-25m the default would take several times
    # as long as the whole ALS fit.
    large_ratings: int = Field(5_000_000, ge=0)
    mf_large: RatingConfig = RatingConfig(factors=32, iterations=6, cg_steps=2)
    knn: KNNConfig = KNNConfig()
    blend: bool = True
    # The blend weights need enough held-out ratings to be trusted; below this many the MF
    # model is served alone.
    min_blend_ratings: int = Field(5_000, ge=10)
    # The kNN similarities cost grows fast with users x movies; larger data get the MF alone.
    max_blend_ratings: int = Field(1_500_000, ge=0)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 2
    # Ratings drift over time (Koren 2009); with this set, predictions are shifted by how far
    # the mean of the last `recent_days` of ratings sits from the overall mean.
    recent_days: float | None = Field(None, gt=0)


class RatingPredictor:
    def __init__(
        self,
        mf: RatingModel,
        knn: ItemKNN | None,
        weights: np.ndarray,
        scale: tuple[float, float],
        offset: float = 0.0,
    ):
        self.mf = mf
        self.knn = knn
        self.weights = np.asarray(weights, dtype=np.float64)  # intercept, mf, knn
        self.scale = scale
        self.offset = float(offset)

    @classmethod
    def fit(
        cls,
        ratings: sp.csr_matrix,
        config: PredictorConfig,
        scale: tuple[float, float],
        offset: float = 0.0,
        fit_knn: FitKNN = ItemKNN.fit,
    ) -> RatingPredictor:
        """Fit on a users x movies CSR of ratings; `offset` is the drift shift (see `drift_offset`).
        `fit_knn` fits the kNN part (evaluation passes one that reuses fits across a grid of MF
        settings: the kNN does not depend on them)."""
        ratings = ratings.tocsr()
        mf = RatingModel.fit(
            ratings, config.mf if ratings.nnz <= config.large_ratings else config.mf_large, scale
        )
        held_out = ratings.nnz * config.validation_fraction
        if not config.blend or held_out < config.min_blend_ratings or ratings.nnz > config.max_blend_ratings:
            return cls(mf, None, np.array([0.0, 1.0, 0.0]), scale, offset)
        weights = _blend_weights(ratings, config, scale, fit_knn)
        return cls(mf, fit_knn(ratings, config.knn), weights, scale, offset)

    def predict(self, users: np.ndarray, items: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Predictions for user/movie positions (-1 = unknown); `history` holds the users' ratings."""
        blended = self.mf.predict(users, items).astype(np.float64)
        if self.knn is not None:
            knn = self.knn.predict(users, items, history)
            blended = self.weights[0] + self.weights[1] * blended + self.weights[2] * knn
        return np.clip(blended + self.offset, *self.scale).astype(np.float32)

    def predict_for(self, positions: np.ndarray, ratings: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions over movie positions `items` for a user given by their whole history
        (folded into the MF model; the kNN part reads the same history)."""
        factors, bias = self.mf.fold_in(positions, ratings)
        blended = self.mf.predict_for(factors, bias, items).astype(np.float64)
        if self.knn is not None:
            knn = self.knn.predict_for(positions, ratings, items)
            blended = self.weights[0] + self.weights[1] * blended + self.weights[2] * knn
        return np.clip(blended + self.offset, *self.scale).astype(np.float32)

    def save(self, directory: Path) -> None:
        self.mf.save(directory)
        if self.knn is not None:
            self.knn.save(directory)
        meta = {
            "weights": self.weights.tolist(),
            "scale": list(self.scale),
            "knn": self.knn is not None,
            "offset": self.offset,
        }
        (directory / "rating_blend.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> RatingPredictor:
        meta = json.loads((directory / "rating_blend.json").read_text())
        knn = ItemKNN.load(directory) if meta["knn"] else None
        scale = (float(meta["scale"][0]), float(meta["scale"][1]))
        return cls(RatingModel.load(directory), knn, np.array(meta["weights"]), scale, meta["offset"])


def drift_offset(ratings: pd.DataFrame, recent_days: float | None) -> float:
    """Mean of the last `recent_days` of ratings minus the overall mean (0 when unset)."""
    if recent_days is None or ratings.empty:
        return 0.0
    recent = ratings["timestamp"] >= ratings["timestamp"].max() - recent_days * 86_400
    return float(ratings.loc[recent, "rating"].mean() - ratings["rating"].mean())


def _blend_weights(
    ratings: sp.csr_matrix, config: PredictorConfig, scale: tuple[float, float], fit_knn: FitKNN
) -> np.ndarray:
    coo = ratings.tocoo()
    rng = np.random.default_rng(config.seed)
    held = rng.random(coo.nnz) < config.validation_fraction
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=ratings.shape)
    mf = RatingModel.fit(train, config.mf, scale)
    knn = fit_knn(train, config.knn)
    users, items, actual = coo.row[held], coo.col[held], coo.data[held]
    features = np.column_stack(
        [np.ones(len(actual)), mf.predict(users, items), knn.predict(users, items, train)]
    )
    weights, *_ = np.linalg.lstsq(features, actual, rcond=None)
    return weights
