"""Deterministic splits and ranking/rating metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats


def holdout_split(
    ratings: pd.DataFrame, fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, a random `fraction` of their ratings (rounded) goes to the test part."""
    rng = np.random.default_rng(seed)
    keys = rng.random(len(ratings))
    users = ratings["user_id"].to_numpy()
    order = np.lexsort((keys, users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    n_test = np.repeat(np.floor(counts * fraction + 0.5).astype(np.int64), counts)
    test_mask = np.zeros(len(ratings), dtype=bool)
    test_mask[order] = rank < n_test
    return ratings[~test_mask].reset_index(drop=True), ratings[test_mask].reset_index(drop=True)


def kfold_splits(ratings: pd.DataFrame, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Fold number (0..folds-1) of every rating, a random balanced assignment."""
    rng = np.random.default_rng(seed)
    assignment = np.arange(len(ratings)) % folds
    rng.shuffle(assignment)
    return [assignment == f for f in range(folds)]


@dataclass(frozen=True)
class RankingMetrics:
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    users: int

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "ndcg": self.ndcg,
            "map": self.map,
            "coverage": self.coverage,
            "users": self.users,
        }


def ranking_metrics(top: np.ndarray, relevant: sp.csr_matrix, n_items: int) -> RankingMetrics:
    """Metrics@k for recommendation lists `top` (users x k item positions, -1 = empty slot)
    against a users x items relevance matrix. Users without relevant items are skipped."""
    k = top.shape[1]
    hits, n_rel, evaluated = _hits(top, relevant)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at * hits).sum(axis=1) / np.minimum(n_rel, k)
    shown = top[evaluated]
    return RankingMetrics(
        precision=float(hits.sum(axis=1).mean() / k),
        recall=float((hits.sum(axis=1) / n_rel).mean()),
        ndcg=float(_ndcg(hits, n_rel).mean()),
        map=float(ap.mean()),
        coverage=float(len(np.unique(shown[shown >= 0])) / n_items),
        users=int(evaluated.sum()),
    )


def user_ndcg(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """nDCG@k of each user with relevant items (`ranking_metrics`' mean is over these)."""
    hits, n_rel, _ = _hits(top, relevant)
    return _ndcg(hits, n_rel)


def _hits(top: np.ndarray, relevant: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which slots of `top` are relevant, and how many relevant items there are, for the users
    with any (the third array marks them)."""
    n_relevant = np.diff(relevant.indptr)
    evaluated = n_relevant > 0
    hits = np.zeros(top.shape, dtype=bool)
    for row in np.flatnonzero(evaluated):
        rel = relevant.indices[relevant.indptr[row] : relevant.indptr[row + 1]]
        hits[row] = np.isin(top[row], rel) & (top[row] >= 0)
    return hits[evaluated], n_relevant[evaluated], evaluated


def _ndcg(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k) - 1]
    return (hits * discounts).sum(axis=1) / ideal


def interval(
    values: np.ndarray, statistic: Callable[..., np.ndarray] = np.mean, seed: int = 0
) -> tuple[float, float]:
    """95 % bootstrap confidence interval (BCa, 2,000 resamples, scipy) of `statistic` over
    `values` (one per user or per rating): how far another sample of users or ratings like
    these could move the figure."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or np.all(values == values[0]):  # nothing to resample: the value itself
        value = float(statistic(values)) if len(values) else float("nan")
        return value, value
    result = stats.bootstrap(
        (values,),
        statistic,
        n_resamples=2000,
        confidence_level=0.95,
        random_state=np.random.default_rng(seed),
        vectorized=True,
        axis=-1,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted) - np.asarray(actual)) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted) - np.asarray(actual))))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (-inf scores never chosen)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    result = np.take_along_axis(part, order, axis=1)
    chosen = np.take_along_axis(part_scores, order, axis=1)
    return np.where(np.isfinite(chosen), result, -1)


def top_lists(
    scorer: Callable[[np.ndarray], np.ndarray], seen: sp.csr_matrix, k: int, batch: int = 2048
) -> np.ndarray:
    """Top-k item positions for every user (row of `seen`), best first, seen items excluded.

    `scorer(rows)` returns the scores of those users over all items; users are scored in
    batches so memory stays batch x items whatever the number of users.
    """
    tops = [np.zeros((0, min(k, seen.shape[1])), dtype=np.int64)]
    for start in range(0, seen.shape[0], batch):
        rows = np.arange(start, min(start + batch, seen.shape[0]))
        scores = np.array(scorer(rows), dtype=np.float32)
        seen_rows, seen_cols = seen[rows].nonzero()
        scores[seen_rows, seen_cols] = -np.inf
        tops.append(top_k(scores, k))
    return np.vstack(tops)
