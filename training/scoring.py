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

    def user_best_unseen(
        self,
        vector: np.ndarray,
        history: np.ndarray,
        seen: np.ndarray,
        n: int,
        mask: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One user's (a request's) best `n` movies, best first, as (positions, scores): their
        row of `scores` from their ALS vector and the catalog positions of their history, the
        positions `seen` and those `mask` (when given) leaves out never chosen; fewer where
        none remain. One compiled call that holds no GIL: the event loop runs beside it."""
        ease = self.ease
        indptr, indices, data = (
            (ease.indptr, ease.indices, ease.data) if ease is not None and self.ease_weight else _NO_ROWS
        )
        return _user_best_unseen(
            self.als.item_factors_t,
            np.asarray(vector, dtype=np.float32),
            np.float32(self.als_weight),
            np.float32(self.ease_weight),
            indptr,
            indices,
            data,
            np.asarray(history, dtype=np.int64),
            np.asarray(seen, dtype=np.int64),
            _NO_MASK if mask is None else mask,
            n,
        )

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


_NO_ROWS = (np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))  # no EASE: an empty CSR
_NO_MASK = np.zeros(0, dtype=bool)


@numba.njit(nogil=True, cache=True)
def _user_best_unseen(
    item_factors_t: np.ndarray,
    vector: np.ndarray,
    als_weight: np.float32,
    ease_weight: np.float32,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    history: np.ndarray,
    seen: np.ndarray,
    mask: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`Ranker.user_best_unseen`: als_weight x (x Vᵀ) plus ease_weight x the EASE rows of the
    history, seen and masked-out movies (mask empty: none) dropped, the best n kept in a heap."""
    scores = (vector @ item_factors_t) * als_weight
    if len(indices):
        total = np.zeros(len(scores), dtype=np.float64)
        for row in history:
            for at in range(indptr[row], indptr[row + 1]):
                total[indices[at]] += data[at]
        for at in range(len(scores)):
            scores[at] += ease_weight * total[at]
    for position in seen:
        scores[position] = -np.inf
    if len(mask):
        for at in range(len(scores)):
            if not mask[at]:
                scores[at] = -np.inf
    return _top_n(scores, n)


@numba.njit(nogil=True, cache=True)
def _top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n highest finite scores, best first, ties by position: a min-heap of the best so far
    (root: the worst kept), O(len x log n) and no copy of the scores."""
    n = min(n, len(scores))
    kept_scores = np.empty(n, dtype=scores.dtype)
    kept = np.empty(n, dtype=np.int64)
    size = 0
    for position in range(len(scores)):
        score = scores[position]
        if not np.isfinite(score):
            continue
        if size < n:  # sift the newcomer up
            at = size
            size += 1
            while at > 0:
                parent = (at - 1) // 2
                if kept_scores[parent] < score:  # the newcomer (latest position) is worse on a tie
                    break
                kept_scores[at], kept[at] = kept_scores[parent], kept[parent]
                at = parent
        elif score > kept_scores[0]:  # replaces the worst kept: sift down from the root
            at = 0
            while True:
                child = 2 * at + 1
                if child >= size:
                    break
                if child + 1 < size and _worse(kept_scores, kept, child + 1, child):
                    child += 1
                if kept_scores[child] >= score:  # on a tie the kept one, at an earlier position, is better
                    break
                kept_scores[at], kept[at] = kept_scores[child], kept[child]
                at = child
        else:
            continue
        kept_scores[at], kept[at] = score, position
    by_position = np.argsort(kept[:size])
    order = by_position[np.argsort(-kept_scores[by_position], kind="mergesort")]
    return kept[order], kept_scores[order]


@numba.njit(inline="always")
def _worse(scores: np.ndarray, positions: np.ndarray, a: int, b: int) -> bool:
    return scores[a] < scores[b] or (scores[a] == scores[b] and positions[a] > positions[b])
