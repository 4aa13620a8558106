"""Star-rating prediction: global mean + regularised biases + matrix factorisation, by ALS.

r̂(u, i) = μ + b_u + b_i + p_u · q_i, fitted by alternating exact least squares in numpy
with weighted-λ regularisation (each user's and movie's penalty grows with its number of
ratings, Zhou et al. 2008). Unknown users get μ + b_i, unknown movies μ + b_u, both μ;
predictions are clipped to the dataset's rating scale. New users are folded in with the same
solve a training user gets, so fresh ratings change their predictions at once.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from training.models.storage import load_model, save_model


class RatingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factors: int = Field(64, ge=0, le=512)
    regularization: float = Field(0.14, ge=0)
    bias_regularization: float = Field(5.0, ge=0)
    iterations: int = Field(15, ge=1, le=200)
    cg_steps: int = Field(3, ge=1, le=50)
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
        by_user = ratings.tocsr().astype(np.float64)  # the kernel's ratings dtype, converted once
        by_user.eliminate_zeros()
        by_item = by_user.T.tocsr()
        n_users, n_items = by_user.shape
        mean = float(by_user.data.mean()) if by_user.nnz else float(np.mean(scale))
        rng = np.random.default_rng(config.random_state)
        k = config.factors
        user_factors = np.zeros((n_users, k), dtype=np.float32)
        item_factors = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
        user_bias = np.zeros(n_users)
        item_bias = np.zeros(n_items)
        for _ in range(config.iterations):
            _solve_side(by_user, mean, item_factors, item_bias, user_factors, user_bias, config)
            _solve_side(by_item, mean, user_factors, user_bias, item_factors, item_bias, config)
        return cls(config, mean, user_bias, item_bias, user_factors, item_factors, scale)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions for row/column positions; -1 marks an unknown user or movie."""
        users = np.ascontiguousarray(users, dtype=np.int64)
        items = np.ascontiguousarray(items, dtype=np.int64)
        pred = _predict_pairs(
            users, items, self.mean, self.user_bias, self.item_bias, self.user_factors, self.item_factors
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
        meta = {"config": self.config.model_dump(), "mean": self.mean, "scale": list(self.scale)}
        save_model(
            directory,
            "rating_model",
            meta,
            user_bias=self.user_bias,
            item_bias=self.item_bias,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
        )

    @classmethod
    def load(cls, directory: Path) -> RatingModel:
        meta, arrays = load_model(directory, "rating_model")
        scale = (float(meta["scale"][0]), float(meta["scale"][1]))
        return cls(RatingConfig.model_validate(meta["config"]), meta["mean"], **arrays, scale=scale)


def _solve_side(
    matrix: sp.csr_matrix,
    mean: float,
    other_factors: np.ndarray,
    other_bias: np.ndarray,
    factors: np.ndarray,
    bias: np.ndarray,
    config: RatingConfig,
) -> None:
    """Update every row of one side (users or items) against the other, in place."""
    _cg_side(
        matrix.indptr,
        matrix.indices,
        matrix.data,
        mean,
        other_factors,
        other_bias,
        factors,
        bias,
        config.regularization,
        config.bias_regularization,
        config.cg_steps,
    )


@numba.njit(parallel=True, fastmath=True, cache=True)
def _cg_side(
    indptr, indices, data, mean, other_factors, other_bias, factors, bias, regularization, bias_reg, cg_steps
):
    """Each row's normal equations (XᵀX + D) w = Xᵀt, with x = [q_j, 1] and t = r - μ - b_j per
    rating, solved by a few conjugate-gradient steps warm-started from the current solution:
    the approach `implicit` takes for implicit ALS, O(ratings · factors) per step instead of the
    O(ratings · factors²) of forming every XᵀX. Rows run in parallel; a row's ratings are read
    straight from the CSR arrays, so nothing of size ratings x factors is ever allocated.
    """
    k = other_factors.shape[1]
    for row in numba.prange(len(indptr) - 1):
        lo, hi = indptr[row], indptr[row + 1]
        if lo == hi:
            continue
        penalty = np.full(k + 1, regularization * (hi - lo))
        penalty[k] = bias_reg
        w = np.empty(k + 1)
        w[:k] = factors[row]
        w[k] = bias[row]
        residual = -penalty * w
        for idx in range(lo, hi):
            j = indices[idx]
            error = data[idx] - mean - other_bias[j] - w[k]
            for f in range(k):
                error -= other_factors[j, f] * w[f]
            for f in range(k):
                residual[f] += error * other_factors[j, f]
            residual[k] += error
        direction = residual.copy()
        norm = (residual * residual).sum()
        step = np.empty(k + 1)
        for _ in range(cg_steps):
            if norm <= 0.0:
                break
            step[:] = penalty * direction  # (XᵀX + D) · direction
            for idx in range(lo, hi):
                j = indices[idx]
                projected = direction[k]
                for f in range(k):
                    projected += other_factors[j, f] * direction[f]
                for f in range(k):
                    step[f] += projected * other_factors[j, f]
                step[k] += projected
            curvature = (direction * step).sum()
            if curvature <= 0.0:
                break
            alpha = norm / curvature
            w += alpha * direction
            residual -= alpha * step
            new_norm = (residual * residual).sum()
            direction = residual + (new_norm / norm) * direction
            norm = new_norm
        factors[row] = w[:k]
        bias[row] = w[k]


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


@numba.njit(cache=True)
def _predict_pairs(
    users: np.ndarray,
    items: np.ndarray,
    mean: float,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
) -> np.ndarray:
    """μ + b_u + b_i + p_u · q_i per pair, each term only where its side is known (>= 0)."""
    pred = np.empty(len(users))
    for n in range(len(users)):
        u, i = users[n], items[n]
        value = mean
        if u >= 0:
            value += user_bias[u]
        if i >= 0:
            value += item_bias[i]
        if u >= 0 and i >= 0:
            dot = 0.0
            for f in range(user_factors.shape[1]):
                dot += user_factors[u, f] * item_factors[i, f]
            value += dot
        pred[n] = value
    return pred
