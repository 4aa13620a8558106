"""Most similar movies for every movie: cosine over ALS item factors, in batches.

Never builds the dense movies x movies matrix: each batch of rows is scored against all
candidates and cut to the top N at once, so memory stays batch x movies.
"""

from __future__ import annotations

import os

import numpy as np
from threadpoolctl import threadpool_limits

from training.metrics import top_k


def similar_movies(
    item_factors: np.ndarray, candidates: np.ndarray, n: int = 100, batch: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores), each items x n; positions -1 where fewer candidates exist.

    `candidates` is a boolean mask of movies allowed to appear as neighbours (e.g. enough
    ratings for their factors to mean something); a movie is never its own neighbour.
    """
    norms = np.linalg.norm(item_factors, axis=1)
    unit = np.divide(item_factors, norms[:, None], out=np.zeros_like(item_factors), where=norms[:, None] > 0)
    n_items = len(unit)
    n = min(n, max(int(candidates.sum()) - 1, 1))
    positions = np.full((n_items, n), -1, dtype=np.int32)
    scores = np.zeros((n_items, n), dtype=np.float32)
    blocked = np.where(candidates, 0.0, -np.inf).astype(np.float32)
    with threadpool_limits(os.cpu_count() or 1, "blas"):  # one big product per batch: all cores
        for start in range(0, n_items, batch):
            stop = min(start + batch, n_items)
            sims = unit[start:stop] @ unit.T + blocked
            sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
            best = top_k(sims, n)
            positions[start:stop] = best
            got = np.take_along_axis(sims, np.maximum(best, 0), axis=1)
            scores[start:stop] = np.where(best >= 0, got, 0.0)
    zero = norms == 0
    positions[zero] = -1
    scores[zero] = 0.0
    return positions, scores
