"""Item-kNN with baselines (Koren 2010; Surprise's KNNBaseline), for blending with the MF model.

r̂(u, i) = b_ui + Σ_j s_ij (r_uj - b_uj) / Σ_j s_ij over the `neighbours` movies most similar
to i that u rated, with b_ui = μ + b_u + b_i regularised baselines and s_ij the shrunk
Pearson-baseline similarity. Similarities are computed for the `max_items` most-rated movies
in blocks (never all pairs of a large catalog at once) and only the top `keep` per movie are
stored, so prediction is a vectorised lookup.
"""

from __future__ import annotations

from pathlib import Path

import numba
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

    def predict(self, users: np.ndarray, items: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Predictions for row/column positions (-1 = unknown user or movie); `history` is the
        users x movies CSR of their ratings (rows as in `users`)."""
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
        return self._predict(zeros, np.full(len(items), bias), items, row)

    def _predict(
        self, users: np.ndarray, user_bias: np.ndarray, items: np.ndarray, history: sp.csr_matrix
    ) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        known_i = items >= 0
        user_base = self.mean + user_bias
        base = user_base + np.where(known_i, self.item_bias[np.where(known_i, items, 0)], 0.0)
        history = history.tocsr()
        offsets = _neighbourhood_offsets(
            np.asarray(users, dtype=np.int64),
            items,
            np.asarray(user_base, dtype=np.float64),
            self.neighbours,
            self.similarities,
            self.item_bias,
            history.indptr,
            history.indices,
            history.data.astype(np.float64, copy=False),
            self.config.neighbours,
        )
        return (base + offsets).astype(np.float32)

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


@numba.njit(cache=True)
def _neighbourhood_offsets(
    users, items, user_base, neighbours, similarities, item_bias, indptr, indices, data, max_neighbours
):
    """Σ_j s_ij (r_uj - b_uj) / Σ_j s_ij per (user, movie) pair, over the `max_neighbours` most
    similar movies the user rated (neighbour lists are sorted by similarity, padded with -1 at
    the end); 0 when none was.

    Pairs are visited grouped by user: the user's ratings are spread once into a movie-indexed
    scratch row (stamped with the group, so nothing is ever cleared), and each neighbour is then
    one array read. Serial: a request's pairs are few, and the service calls it from threads.
    """
    out = np.zeros(len(items))
    n_users = len(indptr) - 1
    stamp = np.full(len(item_bias), -1, dtype=np.int32)
    rating = np.zeros(len(item_bias))
    current = -1
    for p in np.argsort(users, kind="mergesort"):
        user, item = users[p], items[p]
        if item < 0 or user < 0 or user >= n_users:
            continue
        if user != current:
            current = user
            for at in range(indptr[user], indptr[user + 1]):
                stamp[indices[at]] = user
                rating[indices[at]] = data[at]
        total = 0.0
        weighted = 0.0
        used = 0
        for n in range(neighbours.shape[1]):
            neighbour = neighbours[item, n]
            if neighbour < 0:  # the padding after the movie's last neighbour
                break
            similarity = similarities[item, n]
            if similarity <= 0.0 or stamp[neighbour] != user:
                continue
            total += similarity
            weighted += similarity * (rating[neighbour] - item_bias[neighbour])
            used += 1
            if used == max_neighbours:
                break
        if total > 0.0:
            out[p] = (weighted - user_base[p] * total) / total
    return out
