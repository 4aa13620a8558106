"""Star-rating prediction: global mean + regularised biases + matrix factorisation, by ALS.

r̂(u, i) = μ + b_u + b_i + p_u · q_i, fitted by alternating exact least squares in numpy
with weighted-λ regularisation (each user's and movie's penalty grows with its number of
ratings, Zhou et al. 2008). Unknown users get μ + b_i, unknown movies μ + b_u, both μ;
predictions are clipped to the dataset's rating scale. New users are folded in with the same
solve a training user gets, so fresh ratings change their predictions at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field


class RatingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factors: int = Field(64, ge=0, le=512)
    regularization: float = Field(0.12, ge=0)
    bias_regularization: float = Field(5.0, ge=0)
    iterations: int = Field(12, ge=1, le=200)
    random_state: int = 0


class RatingModel:
    def __init__(
        self,
        config: RatingConfig,
        mean: float,
        user_bias: np.ndarray,
        item_bias: np.ndarray,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        scale: tuple[float, float],
    ):
        self.config = config
        self.mean = float(mean)
        self.user_bias = user_bias.astype(np.float32)
        self.item_bias = item_bias.astype(np.float32)
        self.user_factors = user_factors.astype(np.float32)
        self.item_factors = item_factors.astype(np.float32)
        self.scale = (float(scale[0]), float(scale[1]))

    @classmethod
    def fit(cls, ratings: sp.csr_matrix, config: RatingConfig, scale: tuple[float, float]) -> RatingModel:
        """Fit on a users x items CSR of ratings (stored zeros are not ratings)."""
        by_user = ratings.tocsr()
        by_user.eliminate_zeros()
        by_item = by_user.T.tocsr()
        n_users, n_items = by_user.shape
        mean = float(by_user.data.mean()) if by_user.nnz else float(np.mean(scale))
        rng = np.random.default_rng(config.random_state)
        k = config.factors
        user_factors = np.zeros((n_users, k))
        item_factors = rng.normal(0, 0.1, (n_items, k))
        user_bias = np.zeros(n_users)
        item_bias = np.zeros(n_items)
        for _ in range(config.iterations):
            _solve_side(by_user, mean, item_factors, item_bias, user_factors, user_bias, config)
            _solve_side(by_item, mean, user_factors, user_bias, item_factors, item_bias, config)
        return cls(config, mean, user_bias, item_bias, user_factors, item_factors, scale)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions for row/column positions; -1 marks an unknown user or movie."""
        users = np.asarray(users)
        items = np.asarray(items)
        known_u = users >= 0
        known_i = items >= 0
        u = np.where(known_u, users, 0)
        i = np.where(known_i, items, 0)
        both = known_u & known_i
        dot = np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i])
        pred = (
            self.mean
            + np.where(known_u, self.user_bias[u], 0.0)
            + np.where(known_i, self.item_bias[i], 0.0)
            + np.where(both, dot, 0.0)
        )
        return np.clip(pred, *self.scale).astype(np.float32)

    def fold_in(self, items: np.ndarray, ratings: np.ndarray) -> tuple[np.ndarray, float]:
        """Factors and bias for a user from their ratings, against the fixed movie side."""
        factors, bias = _solve_one(
            self.item_factors[items].astype(np.float64),
            np.asarray(ratings, np.float64) - self.mean - self.item_bias[items],
            self.config,
        )
        return factors.astype(np.float32), float(bias)

    def predict_for(self, factors: np.ndarray, bias: float, items: np.ndarray) -> np.ndarray:
        """Predictions for a folded-in user over movie positions (-1 = unknown movie)."""
        items = np.asarray(items)
        known = items >= 0
        i = np.where(known, items, 0)
        pred = self.mean + bias + np.where(known, self.item_bias[i] + self.item_factors[i] @ factors, 0.0)
        return np.clip(pred, *self.scale).astype(np.float32)

    def save(self, directory: Path) -> None:
        np.savez(
            directory / "rating_model.npz",
            user_bias=self.user_bias,
            item_bias=self.item_bias,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
        )
        meta = {"config": self.config.model_dump(), "mean": self.mean, "scale": list(self.scale)}
        (directory / "rating_model.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> RatingModel:
        meta = json.loads((directory / "rating_model.json").read_text())
        with np.load(directory / "rating_model.npz", allow_pickle=False) as arrays:
            return cls(
                RatingConfig.model_validate(meta["config"]),
                meta["mean"],
                arrays["user_bias"],
                arrays["item_bias"],
                arrays["user_factors"],
                arrays["item_factors"],
                tuple(meta["scale"]),
            )


def _solve_side(
    matrix: sp.csr_matrix,
    mean: float,
    other_factors: np.ndarray,
    other_bias: np.ndarray,
    factors: np.ndarray,
    bias: np.ndarray,
    config: RatingConfig,
) -> None:
    """Re-solve every row of one side (users or items) against the other, in place."""
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for row in range(matrix.shape[0]):
        start, end = indptr[row], indptr[row + 1]
        if start == end:
            continue
        cols = indices[start:end]
        target = data[start:end] - mean - other_bias[cols]
        factors[row], bias[row] = _solve_one(other_factors[cols], target, config)


def _solve_one(y: np.ndarray, target: np.ndarray, config: RatingConfig) -> tuple[np.ndarray, float]:
    """Least squares for [factors, bias] with weighted-λ factor penalty and a bias penalty."""
    n, k = y.shape
    if n == 0:
        return np.zeros(k), 0.0
    design = np.empty((n, k + 1))
    design[:, :k] = y
    design[:, k] = 1.0
    penalty = np.full(k + 1, config.regularization * n)
    penalty[k] = config.bias_regularization
    a = design.T @ design
    a[np.diag_indices_from(a)] += penalty
    solution = np.linalg.solve(a, design.T @ target)
    return solution[:k], float(solution[k])
