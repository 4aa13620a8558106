"""Most similar movies for every movie: cosine over ALS item factors, by implicit's top-k.

implicit's top-k (multithreaded C++ on the CPU, a CUDA kernel on the GPU) scores query rows
against all movies in blocks and keeps the best k per row, so the dense movies x movies matrix
never exists; we pass unit-length factors so its dot product is the cosine.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

_QUERY_BATCH = 8192


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
    norms = np.linalg.norm(item_factors, axis=1)
    unit = np.divide(item_factors, norms[:, None], out=np.zeros_like(item_factors), where=norms[:, None] > 0)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    n_items = len(unit)
    candidates = candidates & (norms > 0)  # a zero vector has no direction to compare
    n_candidates = int(candidates.sum())
    positions = np.full((n_items, n), -1, dtype=np.int32)
    scores = np.zeros((n_items, n), dtype=np.float32)
    if n_candidates == 0 or n_items == 0:
        return positions, scores
    blocked = np.flatnonzero(~candidates).astype(np.int32)
    # One more than needed, so that dropping the movie itself still leaves n.
    k = min(n + 1, n_candidates)
    ids, sims = _top_k(unit, blocked, k, device)
    own = ids == np.arange(n_items)[:, None]
    # Stable sort on "is the movie itself" moves it to the end, keeping the ranking order.
    order = np.argsort(own, axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    valid = np.isfinite(sims) & ~np.take_along_axis(own, order, axis=1)
    width = min(n, k)
    positions[:, :width] = np.where(valid, ids, -1)[:, :width]
    scores[:, :width] = np.where(valid, sims, 0.0)[:, :width]
    zero = norms == 0
    positions[zero] = -1
    scores[zero] = 0.0
    return positions, scores


def _top_k(
    unit: np.ndarray, blocked: np.ndarray, k: int, device: Literal["cpu", "gpu"]
) -> tuple[np.ndarray, np.ndarray]:
    """Best k movies (ids, dot products) for every movie, never one in `blocked`."""
    if device == "gpu":
        import implicit.gpu

        knn = implicit.gpu.KnnQuery()
        items = implicit.gpu.Matrix(unit)
        item_filter = implicit.gpu.IntVector(blocked) if len(blocked) else None
        parts = [
            knn.topk(
                items, implicit.gpu.Matrix(unit[start : start + _QUERY_BATCH]), k, item_filter=item_filter
            )
            for start in range(0, len(unit), _QUERY_BATCH)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    from implicit.cpu.topk import topk

    ids, sims = topk(unit, unit, k, filter_items=blocked if len(blocked) else None, num_threads=0)
    return np.asarray(ids), np.asarray(sims)
