"""Best k items by dot product for many queries at once, by implicit's top-k.

implicit's top-k (multithreaded C++ on the CPU, a CUDA kernel on the GPU) scores blocks of
queries against all items and keeps the best k per query, so the dense queries x items matrix
never exists. Similar movies (unit item vectors as queries) go through here, and on a GPU every
user's precomputed ranking too (user vectors, their rated movies excluded; on the CPU the
norm-bounded scan of training.scoring does that faster).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

_GPU_QUERY_BATCH = 8192


def top_dot(
    items: np.ndarray,
    queries: np.ndarray,
    k: int,
    device: Literal["cpu", "gpu"] = "cpu",
    exclude: sp.csr_matrix | None = None,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, scores), each queries x k, best first. Row i of `exclude` holds the items never
    returned for query i; `blocked` items are never returned for any. Where fewer than k items
    remain, the trailing ids are -1 and their scores -inf."""
    items = np.ascontiguousarray(items, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    blocked = None if blocked is None or len(blocked) == 0 else np.asarray(blocked, dtype=np.int32)
    if device == "gpu":
        ids, scores = _top_dot_gpu(items, queries, k, exclude, blocked)
    else:
        from implicit.cpu.topk import topk

        ids, scores = topk(items, queries, k, filter_query_items=exclude, filter_items=blocked, num_threads=0)
    ids, scores = np.asarray(ids, dtype=np.int32), np.asarray(scores, dtype=np.float32)
    # implicit scores an excluded item -FLT_MAX (not -inf); either way it was not chosen.
    ids[~(scores > np.finfo(np.float32).min)] = -1
    scores[ids < 0] = -np.inf
    return ids, scores


def _top_dot_gpu(
    items: np.ndarray,
    queries: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None,
    blocked: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    import implicit.gpu

    knn = implicit.gpu.KnnQuery()
    on_device = implicit.gpu.Matrix(items)
    item_filter = implicit.gpu.IntVector(blocked) if blocked is not None else None
    parts = []
    for start in range(0, len(queries), _GPU_QUERY_BATCH):
        stop = start + _GPU_QUERY_BATCH
        query_filter = None
        if exclude is not None and exclude[start:stop].nnz:
            query_filter = implicit.gpu.COOMatrix(exclude[start:stop].tocoo())
        parts.append(
            knn.topk(
                on_device,
                implicit.gpu.Matrix(queries[start:stop]),
                k,
                query_filter=query_filter,
                item_filter=item_filter,
            )
        )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
