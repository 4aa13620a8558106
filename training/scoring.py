"""The known-user ranking, shared by evaluation and serving so both score the same way.

score(u) = w_als · (Vᵀ x_u) + w_ease · (h_u B)
where x_u are the user's ALS factors (trained, or folded in from their history), h_u their
binary history row and B the pruned EASE weights (absent for catalogs too large for EASE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import scipy.sparse as sp

from training.metrics import top_k
from training.models.als import ALSModel, confidence
from training.models.topk import top_dot


@dataclass
class Ranker:
    als: ALSModel
    ease: sp.csr_matrix | None
    als_weight: float
    ease_weight: float
    scale_max: float

    def confidences(self, ratings: np.ndarray, rated: np.ndarray | None = None) -> np.ndarray:
        """ALS confidences of a history. Where `rated` is False the value is an event signal's
        weight times the scale's top (training.signals), weighted by value whatever the
        weighting: 1 + alpha * weight, as the build fits it."""
        cfg = self.als.config
        values = np.asarray(ratings, np.float32)
        conf = confidence(values, cfg.weighting, cfg.alpha, self.scale_max)
        if rated is not None:
            conf = np.where(rated, conf, 1.0 + cfg.alpha * values / self.scale_max).astype(np.float32)
        return conf

    def fold_in(self, items: np.ndarray, ratings: np.ndarray, rated: np.ndarray | None = None) -> np.ndarray:
        return self.als.fold_in(items, self.confidences(ratings, rated))

    def scores(self, user_vectors: np.ndarray, histories: sp.csr_matrix) -> np.ndarray:
        """users x items scores for ALS vectors (users x f) and history rows (users x items)."""
        scores = self.als_weight * (user_vectors @ self.als.item_factors.T)
        if self.ease is not None and self.ease_weight:
            binary = histories.copy()
            binary.data = np.ones_like(binary.data)
            scores += self.ease_weight * (binary @ self.ease).toarray()
        return scores.astype(np.float32, copy=False)

    def user_scores(self, vector: np.ndarray, history: np.ndarray) -> np.ndarray:
        """One user's row of `scores` (a request): their ALS vector and the catalog positions
        of their history, the EASE rows of those positions added up directly."""
        scores = self.als.item_factors @ np.asarray(vector, dtype=np.float32)
        scores *= np.float32(self.als_weight)
        if self.ease is not None and self.ease_weight:
            ease = self.ease
            _add_rows(scores, np.float32(self.ease_weight), ease.indptr, ease.indices, ease.data, history)
        return scores

    def best_unseen(
        self,
        user_vectors: np.ndarray,
        histories: sp.csr_matrix,
        depth: int,
        device: Literal["cpu", "gpu"] = "cpu",
        batch: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each user's `depth` best movies outside their history row, best first, with the
        scores `scores` gives them: (positions, scores), users x depth, positions -1 (score
        -inf) where the catalog runs out. The build stores these so that a known user's
        ranking is read, not computed, on a request."""
        depth = min(depth, histories.shape[1])
        if depth == 0:
            return np.zeros((len(user_vectors), 0), np.int32), np.zeros((len(user_vectors), 0), np.float32)
        if self.ease is None or not self.ease_weight:  # a dot product: implicit's top-k
            positions, scores = top_dot(self.als.item_factors, user_vectors, depth, device, exclude=histories)
            return positions, scores * np.float32(self.als_weight)
        positions = np.full((len(user_vectors), depth), -1, dtype=np.int32)
        scores = np.full((len(user_vectors), depth), -np.inf, dtype=np.float32)
        for start in range(0, len(user_vectors), batch):
            rows = slice(start, start + batch)
            block = self.scores(user_vectors[rows], histories[rows])
            seen_rows, seen_cols = histories[rows].nonzero()
            block[seen_rows, seen_cols] = -np.inf
            best = top_k(block, depth)
            positions[rows] = best
            chosen = np.take_along_axis(block, np.maximum(best, 0), axis=1)
            scores[rows] = np.where(best >= 0, chosen, -np.inf)
        return positions, scores


@numba.njit(cache=True)
def _add_rows(
    out: np.ndarray,
    weight: np.float32,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    rows: np.ndarray,
) -> None:
    """out += weight x the sum of a CSR matrix's `rows` (a binary history row times the matrix)."""
    total = np.zeros(len(out), dtype=np.float64)
    for row in rows:
        for at in range(indptr[row], indptr[row + 1]):
            total[indices[at]] += data[at]
    for at in range(len(out)):
        out[at] += weight * total[at]
