"""Most similar movies for every movie: cosine over ALS item factors, by implicit's top-k
(training.models.topk) on unit-length factors, whose dot product is the cosine."""

from __future__ import annotations

from typing import Literal

import numpy as np

from training.models.als import unit_rows
from training.models.topk import top_dot


def similar_movies(
    item_factors: np.ndarray,
    candidates: np.ndarray,
    n: int = 100,
    device: Literal["cpu", "gpu"] = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores), each items x n; positions -1 where fewer candidates exist.

    `candidates` is a boolean mask of movies allowed to appear as neighbours (e.g. enough
    ratings for their factors to mean something); a movie is never its own neighbour, and a
    movie whose factors are all zero is nobody's.
    """
    unit = unit_rows(item_factors)
    n_items = len(unit)
    zero = ~unit.any(axis=1)
    candidates = candidates & ~zero  # a zero vector has no direction to compare
    n_candidates = int(candidates.sum())
    positions = np.full((n_items, n), -1, dtype=np.int32)
    scores = np.zeros((n_items, n), dtype=np.float32)
    if n_candidates == 0 or n_items == 0:
        return positions, scores
    blocked = np.flatnonzero(~candidates).astype(np.int32)
    # One more than needed, so that dropping the movie itself still leaves n.
    k = min(n + 1, n_candidates)
    ids, sims = top_dot(unit, unit, k, device, blocked=blocked)
    own = ids == np.arange(n_items)[:, None]
    # Stable sort on "is the movie itself" moves it to the end, keeping the ranking order.
    order = np.argsort(own, axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    valid = np.isfinite(sims) & ~np.take_along_axis(own, order, axis=1)
    width = min(n, k)
    positions[:, :width] = np.where(valid, ids, -1)[:, :width]
    scores[:, :width] = np.where(valid, sims, 0.0)[:, :width]
    positions[zero] = -1
    scores[zero] = 0.0
    return positions, scores
