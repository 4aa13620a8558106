"""Compile the numba kernels (the rating MF's solve and prediction, the kNN prediction, a
visitor's fold-in, one user's ranking and its "because", every user's in the build) ahead of use.

numba compiles a kernel on its first call and caches the machine code (beside the module, or
in NUMBA_CACHE_DIR); `python -m training.jit` does it up front, e.g. while a container image
is built, so neither the first build nor the first request pays for it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.models.als import ALSConfig, ALSModel
from training.models.ease import EASEConfig, fit_ease
from training.models.knn import ItemKNN, KNNConfig
from training.models.rating import RatingConfig, RatingModel
from training.scoring import Ranker


def warm_up() -> None:
    ratings = sp.csr_matrix(np.array([[5.0, 3.0, 0.0], [4.0, 0.0, 1.0], [0.0, 2.0, 4.0]], np.float32))
    model = RatingModel.fit(ratings, RatingConfig(factors=2, iterations=1), (1.0, 5.0))
    model.predict(np.array([0, -1]), np.array([1, 0]))
    ItemKNN.fit(ratings, KNNConfig(shrinkage=0.0)).predict(np.array([0]), np.array([2]), ratings)
    als = ALSModel(ALSConfig(factors=2), np.ones((3, 2), np.float32), np.ones((3, 2), np.float32))
    ranker = Ranker(als, fit_ease(ratings, EASEConfig(regularization=1.0, min_count=1)), 0.5, 0.5, 5.0)
    als.fold_in(np.array([1]), np.array([3.0]))  # a visitor's few movies: the low-rank solve
    history = np.array([0, 2], dtype=np.int64)
    for mask in (None, np.ones(3, dtype=bool)):  # a request's ranking, with and without filters
        ranker.user_best_unseen(als.user_factors[0], history, history, 2, mask)
        Ranker(als, None, 1.0, 0.0, 5.0).user_best_unseen(als.user_factors[0], history, history, 2, mask)
    ranker.because(np.array([1]), history, np.array([4.0, 2.0]))  # a pick's liked movie
    for mask in (None, np.ones(3, dtype=bool)):  # a visitor's, in one call
        ranker.visitor_best(np.array([1]), np.array([4.0]), 2, mask)
    for each in (ranker, Ranker(als, None, 1.0, 0.0, 5.0)):  # every user's, in the build
        each.best_unseen(als.user_factors, ratings, 2)


if __name__ == "__main__":
    warm_up()
