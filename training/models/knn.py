"""Item-kNN with baselines (Koren 2010; Surprise's KNNBaseline), for blending with the MF model.

r̂(u, i) = b_ui + Σ_j s_ij (r_uj - b_uj) / Σ_j s_ij over the `neighbours` movies most similar
to i that u rated, with b_ui = μ + b_u + b_i regularised baselines and s_ij the shrunk
Pearson-baseline similarity. Similarities are computed for the `max_items` most-rated movies
in blocks (never all pairs of a large catalog at once) and only the top `keep` per movie are
stored, so prediction is a vectorised lookup.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from training.metrics import top_k
from training.models.storage import load_model, save_model


class KNNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    neighbours: int = Field(40, ge=1, le=500)
    keep: int = Field(300, ge=1, le=2000)
    shrinkage: float = Field(100.0, ge=0)
    user_bias_regularization: float = Field(15.0, ge=0)
    item_bias_regularization: float = Field(10.0, ge=0)
    max_items: int = Field(10_000, ge=1)
    block: int = Field(1024, ge=1)


class ItemKNN:
    def __init__(
        self,
        config: KNNConfig,
        mean: float,
        user_bias: np.ndarray,
        item_bias: np.ndarray,
        neighbours: np.ndarray,
        similarities: np.ndarray,
    ):
        self.config = config
        self.mean = float(mean)
        self.user_bias = user_bias.astype(np.float32)
        self.item_bias = item_bias.astype(np.float32)
        self.neighbours = neighbours.astype(np.int32)
        self.similarities = similarities.astype(np.float32)

    @classmethod
    def fit(cls, ratings: sp.csr_matrix, config: KNNConfig) -> ItemKNN:
        matrix = ratings.tocsr()
        matrix.eliminate_zeros()
        n_users, n_items = matrix.shape
        mean = float(matrix.data.mean()) if matrix.nnz else 0.0
        user_bias, item_bias = _baselines(matrix, mean, config)
        rows = np.repeat(np.arange(n_users), np.diff(matrix.indptr))
        residual = matrix.copy()
        residual.data = (matrix.data - mean - user_bias[rows] - item_bias[matrix.indices]).astype(np.float32)
        counts = np.diff(matrix.tocsc().indptr)
        eligible = np.flatnonzero(counts > 0)
        if len(eligible) > config.max_items:
            eligible = np.sort(eligible[np.argsort(-counts[eligible], kind="stable")[: config.max_items]])
        neighbours, sims = _neighbours(residual, eligible, n_items, config)
        return cls(config, mean, user_bias, item_bias, neighbours, sims)

    def predict(self, users: np.ndarray, items: np.ndarray, history: SparseLookup) -> np.ndarray:
        """Predictions for row/column positions (-1 = unknown user or movie); `history` looks up
        the users' ratings (rows as in `users`)."""
        users = np.asarray(users, dtype=np.int64)
        known_u = (users >= 0) & (users < len(self.user_bias))
        user_bias = np.where(known_u, self.user_bias[np.where(known_u, users, 0)], 0.0)
        return self._predict(users, user_bias, items, history)

    def predict_for(self, positions: np.ndarray, ratings: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predictions over `items` for a user given by their history (movie positions and
        ratings), e.g. one whose ratings arrived after training; the user's bias is estimated
        from the history with the same regularisation as in training."""
        positions = np.asarray(positions, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        residual = ratings - self.mean - self.item_bias[positions]
        bias = residual.sum() / (len(ratings) + self.config.user_bias_regularization) if len(ratings) else 0.0
        row = sp.csr_matrix((ratings, positions, [0, len(positions)]), shape=(1, len(self.item_bias)))
        items = np.asarray(items, dtype=np.int64)
        zeros = np.zeros(len(items), dtype=np.int64)
        return self._predict(zeros, np.full(len(items), bias), items, SparseLookup(row))

    def _predict(
        self, users: np.ndarray, user_bias: np.ndarray, items: np.ndarray, history: SparseLookup
    ) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        known_i = items >= 0
        i = np.where(known_i, items, 0)
        user_base = self.mean + user_bias
        base = user_base + np.where(known_i, self.item_bias[i], 0.0)
        neighbours = self.neighbours[i]
        rated, values = history(users[:, None], neighbours)  # unknown neighbours (-1) are never found
        weights = self.similarities[i] * rated
        weights[~known_i] = 0.0
        # only the `neighbours` most similar movies the user rated count (lists are sorted)
        weights[np.cumsum(weights > 0, axis=1, dtype=np.int32) > self.config.neighbours] = 0.0
        weights = np.maximum(weights, 0.0)
        total = weights.sum(axis=1, dtype=np.float64)
        # Σ w (r_uj - b_uj) with b_uj = μ + b_u + b_j, without a pairs x neighbours baseline array
        weighted = (weights * (values - self.item_bias[np.maximum(neighbours, 0)])).sum(
            axis=1, dtype=np.float64
        )
        offset = np.divide(weighted - user_base * total, total, out=np.zeros_like(total), where=total > 0)
        return (base + offset).astype(np.float32)

    def save(self, directory: Path) -> None:
        save_model(
            directory,
            "knn",
            {"config": self.config.model_dump(), "mean": self.mean},
            user_bias=self.user_bias,
            item_bias=self.item_bias,
            neighbours=self.neighbours,
            similarities=self.similarities,
        )

    @classmethod
    def load(cls, directory: Path) -> ItemKNN:
        meta, arrays = load_model(directory, "knn")
        return cls(KNNConfig.model_validate(meta["config"]), meta["mean"], **arrays)


def _baselines(matrix: sp.csr_matrix, mean: float, config: KNNConfig) -> tuple[np.ndarray, np.ndarray]:
    """Regularised user and item biases by a few rounds of alternating averages."""
    n_users, n_items = matrix.shape
    rows = np.repeat(np.arange(n_users), np.diff(matrix.indptr))
    cols = matrix.indices
    user_bias = np.zeros(n_users)
    item_bias = np.zeros(n_items)
    n_u = np.bincount(rows, minlength=n_users)
    n_i = np.bincount(cols, minlength=n_items)
    for _ in range(10):
        residual = matrix.data - mean - user_bias[rows]
        item_bias = np.bincount(cols, residual, n_items) / (n_i + config.item_bias_regularization)
        residual = matrix.data - mean - item_bias[cols]
        user_bias = np.bincount(rows, residual, n_users) / (n_u + config.user_bias_regularization)
    return user_bias, item_bias


def _neighbours(
    residual: sp.csr_matrix, eligible: np.ndarray, n_items: int, config: KNNConfig
) -> tuple[np.ndarray, np.ndarray]:
    keep = max(1, min(config.keep, len(eligible) - 1))
    neighbours = np.full((n_items, keep), -1, dtype=np.int32)
    sims = np.zeros((n_items, keep), dtype=np.float32)
    if len(eligible) < 2:
        return neighbours, sims
    z = residual[:, eligible].tocsc()
    binary = z.copy()
    binary.data = np.ones_like(binary.data)
    squares = z.copy()
    squares.data = squares.data**2
    zt, bt, st = z.T.tocsr(), binary.T.tocsr(), squares.T.tocsr()
    for start in range(0, len(eligible), config.block):
        stop = min(start + config.block, len(eligible))
        numerator = (zt[start:stop] @ z).toarray()
        support = (bt[start:stop] @ binary).toarray()
        sq_left = (st[start:stop] @ binary).toarray()  # Σ over common users of z_ui²
        sq_right = (bt[start:stop] @ squares).toarray()  # Σ over common users of z_uj²
        denominator = np.sqrt(sq_left * sq_right)
        sim = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
        overlap = np.maximum(support - 1, 0)
        shrunk = overlap + config.shrinkage
        sim *= np.divide(overlap, shrunk, out=np.zeros_like(overlap), where=shrunk > 0)
        sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        best = top_k(sim, keep)
        got = np.take_along_axis(sim, np.maximum(best, 0), axis=1)
        valid = (best >= 0) & (got > 0)
        neighbours[eligible[start:stop]] = np.where(valid, eligible[np.maximum(best, 0)], -1)
        sims[eligible[start:stop]] = np.where(valid, got, 0.0)
    return neighbours, sims


class SparseLookup:
    """Vectorised `matrix[rows, cols]` lookups on a CSR matrix: (found, value) arrays.

    Small matrices are held dense (NaN = no entry), so a lookup is one gather; larger ones
    keep the sorted keys row * n_cols + col and each lookup is a searchsorted.
    """

    DENSE_LIMIT = 50_000_000  # entries; held as one byte each (half-star steps), else float32

    def __init__(self, matrix: sp.csr_matrix):
        matrix = matrix.tocsr()
        matrix.sort_indices()
        self.shape = matrix.shape
        self.dense: np.ndarray | None = None
        doubled = matrix.data * 2
        # Ratings in half-star steps (every MovieLens and Netflix scale) fit in one byte as
        # 2 x rating, 0 = no rating: a 6 MB table for ml-latest-small, gathered from cache.
        if (
            matrix.shape[0] * matrix.shape[1] <= self.DENSE_LIMIT
            and np.array_equal(doubled, np.round(doubled))
            and (doubled.min(initial=1) >= 1)
            and (doubled.max(initial=1) <= 255)
        ):
            dense = np.zeros(matrix.shape, dtype=np.uint8)
            rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            dense[rows, matrix.indices] = doubled.astype(np.uint8)
            self.dense = dense.ravel()
        entry_rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        self.keys = entry_rows * self.shape[1] + matrix.indices
        self.values = matrix.data

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows_b, cols_b = np.broadcast_arrays(rows, cols)
        valid = (rows_b >= 0) & (rows_b < self.shape[0]) & (cols_b >= 0) & (cols_b < self.shape[1])
        if self.dense is not None:
            flat = rows_b.astype(np.int64) * self.shape[1] + cols_b
            codes = np.take(self.dense, flat, mode="clip")  # out-of-range ids masked by `valid`
            found = valid & (codes > 0)
            return found, np.where(found, codes * np.float32(0.5), np.float32(0.0))
        if len(self.keys) == 0:
            return np.zeros(rows_b.shape, dtype=bool), np.zeros(rows_b.shape)
        wanted = rows_b.astype(np.int64) * self.shape[1] + np.maximum(cols_b, 0)
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = (self.keys[pos] == wanted) & valid
        return found, np.where(found, self.values[pos], 0.0)
