"""The served rating predictor: biased MF blended with item-kNN, weights fitted on held-out data.

prediction = w₀ + w_mf · MF(u, i) + w_knn · kNN(u, i), clipped to the rating scale. The weights
come from least squares on a random validation part of the ratings (both models fitted
without it), then both models are refitted on everything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from training.models.knn import ItemKNN, KNNConfig, SparseLookup
from training.models.rating import RatingConfig, RatingModel


class PredictorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mf: RatingConfig = RatingConfig()
    knn: KNNConfig = KNNConfig()
    blend: bool = True
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 2


class RatingPredictor:
    def __init__(self, mf: RatingModel, knn: ItemKNN | None, weights: np.ndarray, scale: tuple[float, float]):
        self.mf = mf
        self.knn = knn
        self.weights = np.asarray(weights, dtype=np.float64)  # intercept, mf, knn
        self.scale = scale

    @classmethod
    def fit(
        cls, ratings: sp.csr_matrix, config: PredictorConfig, scale: tuple[float, float]
    ) -> RatingPredictor:
        ratings = ratings.tocsr()
        if not config.blend:
            return cls(RatingModel.fit(ratings, config.mf, scale), None, np.array([0.0, 1.0, 0.0]), scale)
        weights = _blend_weights(ratings, config, scale)
        return cls(
            RatingModel.fit(ratings, config.mf, scale), ItemKNN.fit(ratings, config.knn), weights, scale
        )

    def predict(self, users: np.ndarray, items: np.ndarray, history: SparseLookup) -> np.ndarray:
        """Predictions for user/movie positions (-1 = unknown); `history` holds the users' ratings."""
        mf = self.mf.predict(users, items)
        if self.knn is None:
            return mf
        knn = self.knn.predict(users, items, history)
        blended = self.weights[0] + self.weights[1] * mf + self.weights[2] * knn
        return np.clip(blended, *self.scale).astype(np.float32)

    def save(self, directory: Path) -> None:
        self.mf.save(directory)
        if self.knn is not None:
            self.knn.save(directory)
        meta = {"weights": self.weights.tolist(), "scale": list(self.scale), "knn": self.knn is not None}
        (directory / "rating_blend.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> RatingPredictor:
        meta = json.loads((directory / "rating_blend.json").read_text())
        knn = ItemKNN.load(directory) if meta["knn"] else None
        scale = (float(meta["scale"][0]), float(meta["scale"][1]))
        return cls(RatingModel.load(directory), knn, np.array(meta["weights"]), scale)


def _blend_weights(ratings: sp.csr_matrix, config: PredictorConfig, scale: tuple[float, float]) -> np.ndarray:
    coo = ratings.tocoo()
    rng = np.random.default_rng(config.seed)
    held = rng.random(coo.nnz) < config.validation_fraction
    if held.sum() < 10:
        return np.array([0.0, 1.0, 0.0])
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=ratings.shape)
    mf = RatingModel.fit(train, config.mf, scale)
    knn = ItemKNN.fit(train, config.knn)
    users, items, actual = coo.row[held], coo.col[held], coo.data[held]
    features = np.column_stack(
        [np.ones(len(actual)), mf.predict(users, items), knn.predict(users, items, SparseLookup(train))]
    )
    weights, *_ = np.linalg.lstsq(features, actual, rcond=None)
    return weights
