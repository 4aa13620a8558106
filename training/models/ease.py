"""EASE (Steck 2019): a closed-form item-item model, B = I - P / diag(P), P = (XᵀX + λI)⁻¹.

Its cost grows with the cube of the number of items, so it is fitted on the most-rated
`max_items` movies only, and the weights are pruned to the `keep` largest per item, which
keeps the bundle small and scoring a sparse product. On ml-latest-small keeping 1000 cost
about 0.002 nDCG@10 against the dense weights; keeping 200 cost about 0.02.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits


class EASEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regularization: float = Field(500.0, gt=0)
    max_items: int = Field(10_000, ge=1)
    min_count: int = Field(3, ge=1)
    keep: int = Field(1000, ge=1)


def fit_ease(binary: sp.csr_matrix, config: EASEConfig) -> sp.csr_matrix:
    """items x items weights (CSR, rows = source item) over the full item space."""
    n_items = binary.shape[1]
    counts = np.asarray(binary.getnnz(axis=0)).ravel()
    eligible = np.flatnonzero(counts >= config.min_count)
    if len(eligible) > config.max_items:
        eligible = eligible[np.argsort(-counts[eligible], kind="stable")[: config.max_items]]
    eligible = np.sort(eligible)
    if len(eligible) < 2:
        empty = np.zeros(0, dtype=np.int32)
        return sp.csr_matrix((empty.astype(np.float32), (empty, empty)), shape=(n_items, n_items))
    x = binary[:, eligible].astype(np.float64)
    gram = (x.T @ x).toarray()
    gram[np.diag_indices_from(gram)] += config.regularization
    with threadpool_limits(os.cpu_count() or 1, "blas"):  # the inversion is one big BLAS job: use every core
        p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return _prune(b.astype(np.float32), eligible, n_items, config.keep)


def _prune(b: np.ndarray, eligible: np.ndarray, n_items: int, keep: int) -> sp.csr_matrix:
    keep = min(keep, b.shape[1] - 1)
    cols = np.argpartition(-np.abs(b), keep - 1, axis=1)[:, :keep]
    vals = np.take_along_axis(b, cols, axis=1)
    rows = np.repeat(eligible, keep)
    matrix = sp.csr_matrix(
        (vals.ravel(), (rows, eligible[cols].ravel())), shape=(n_items, n_items), dtype=np.float32
    )
    matrix.eliminate_zeros()
    return matrix
