"""Metrics against hand-computed values; splits are deterministic."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from training.metrics import (
    holdout_split,
    interval,
    kfold_splits,
    mae,
    ranking_metrics,
    rmse,
    top_k,
    user_ndcg,
)


def test_ranking_metrics_by_hand() -> None:
    # user 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3.
    # user 1: relevant {4}; list [0, 2, 5] -> no hit. user 2: nothing relevant -> skipped.
    relevant = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0], [0] * 6]))
    top = np.array([[1, 2, 3], [0, 2, 5], [0, 1, 2]])
    m = ranking_metrics(top, relevant, n_items=6)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert m.users == 2
    assert m.precision == pytest.approx((2 / 3 + 0) / 2)
    assert m.recall == pytest.approx((1.0 + 0) / 2)
    assert m.ndcg == pytest.approx((dcg / idcg + 0) / 2)
    assert m.map == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)
    assert m.coverage == pytest.approx(5 / 6)  # items 0,1,2,3,5 shown to evaluated users
    np.testing.assert_allclose(user_ndcg(top, relevant), [dcg / idcg, 0.0])


def test_the_bootstrap_interval_holds_the_statistic_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 100), rng.normal(1.0, 1.0, 10_000)
    low, high = interval(small)
    assert low < small.mean() < high
    assert high - low == pytest.approx(2 * 1.96 / 10, rel=0.25)  # about 2 x 1.96 sd / sqrt(n)
    low_l, high_l = interval(large)
    assert low_l < large.mean() < high_l
    assert (high_l - low_l) < (high - low) / 5
    assert interval(small, seed=0) == interval(small, seed=0)
    squares = rng.random(500)
    low_r, high_r = interval(squares, lambda x, axis=-1: np.sqrt(np.mean(x, axis=axis)))
    assert low_r < math.sqrt(squares.mean()) < high_r
    assert interval(np.full(5, 0.25)) == (0.25, 0.25)  # nothing to resample


def test_rmse_and_mae() -> None:
    assert rmse(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(math.sqrt(2.5))
    assert mae(np.array([1.0, 3.0]), np.array([2.0, 5.0])) == pytest.approx(1.5)


def test_top_k_orders_and_skips_minus_inf() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.5]])
    assert top_k(scores, 4).tolist() == [[1, 3, 0, -1]]


def test_top_k_of_one_row_is_that_row_of_a_batch() -> None:
    """A row alone ranks as it does within a batch: ties, -inf and k beyond the finite
    scores included."""
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, (40, 300)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.9] = -np.inf
    batch = top_k(scores, 50)
    assert (batch == -1).any()
    for row in range(len(scores)):
        assert top_k(scores[row : row + 1], 50).tolist() == batch[row : row + 1].tolist()


def test_holdout_split_is_per_user_deterministic() -> None:
    ratings = pd.DataFrame(
        {"user_id": np.repeat([1, 2], [10, 5]), "movie_id": np.arange(15), "rating": 4.0, "timestamp": 0}
    )
    train, test = holdout_split(ratings, 0.2, seed=0)
    assert test.groupby("user_id").size().to_dict() == {1: 2, 2: 1}
    assert len(train) + len(test) == 15
    again = holdout_split(ratings, 0.2, seed=0)[1]
    assert again["movie_id"].tolist() == test["movie_id"].tolist()
    assert holdout_split(ratings, 0.2, seed=3)[1]["movie_id"].tolist() != test["movie_id"].tolist()


def test_kfold_covers_every_rating_once() -> None:
    masks = kfold_splits(pd.DataFrame({"x": range(23)}), folds=5)
    stacked = np.vstack(masks)
    assert (stacked.sum(axis=0) == 1).all()
    assert sorted(stacked.sum(axis=1).tolist()) == [4, 4, 5, 5, 5]
