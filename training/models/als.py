"""Implicit-feedback ALS (the `implicit` library) and the fold-in shared with serving.

Confidence: implicit multiplies the input matrix by `alpha` and uses the result as the
confidence of an observed cell, the unobserved ones having confidence 1 (it adds (c - 1)
y yᵀ to YᵀY). We feed `1 + alpha * w` where w is the rating scaled to (0, 1] ("rating") or 1
("binary"): an observed cell always weighs more than an unobserved one, and a 5-star rating
more than a half-star one. This is Hu, Koren & Volinsky's `1 + alpha * r` with the rating
normalised so that alpha means the same on every rating scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numba
import numpy as np
import scipy.linalg
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits


class ALSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factors: int = Field(64, ge=1, le=1024)
    regularization: float = Field(30.0, gt=0)
    # 5: what tuning picks with the activity exponent 0.6 on ml-latest-small; untuned builds
    # (data over TuneConfig.max_ratings) use it (README, Training).
    alpha: float = Field(5.0, ge=0)
    iterations: int = Field(15, ge=1, le=200)
    weighting: Literal["binary", "rating"] = "rating"
    random_state: int = 0
    # False: implicit's penalty, λ‖x‖². True: λ·n‖x‖² with n the user's number of movies, as
    # Spark MLlib's ALS fits (ALS-WR); a fold-in must use the penalty the factors were fit with.
    weighted_regularization: bool = False
    # Activity normalisation: a user's rating weights are scaled by (m / n)^activity_exponent,
    # n the number of movies they rated and m the median n of the users the factors were fit
    # on (`activity_reference`, set by `ALSModel.fit_ratings` or the Spark engine; None: no
    # scaling). A heavy rater's each rating then counts for less and a light one's for more,
    # so that the movies' factors are not shaped by a few heavy raters (BM25's length
    # normalisation, for users).
    activity_exponent: float = Field(0.6, ge=0, le=2)
    activity_reference: float | None = Field(None, gt=0)

    def activity(self, rated: int) -> float:
        """The weight multiplier of a user who rated `rated` movies (1 without a reference)."""
        if self.activity_reference is None or not self.activity_exponent:
            return 1.0
        return float((self.activity_reference / max(rated, 1)) ** self.activity_exponent)

    def activities(self, rated: np.ndarray) -> np.ndarray:
        """`activity` for each count in `rated` (float32)."""
        if self.activity_reference is None or not self.activity_exponent:
            return np.ones(len(rated), dtype=np.float32)
        return ((self.activity_reference / np.maximum(rated, 1)) ** self.activity_exponent).astype(np.float32)


def confidence(
    ratings: np.ndarray, weighting: str, alpha: float, scale_max: float, activity: np.ndarray | float = 1.0
) -> np.ndarray:
    """1 + alpha * w for each rating, w the rating scaled to (0, 1] ("rating") or 1 ("binary")
    times the user's `activity` multiplier (ALSConfig.activity)."""
    weight = np.ones_like(ratings) if weighting == "binary" else ratings / scale_max
    return (1.0 + alpha * activity * weight).astype(np.float32)


def event_confidence(weights: np.ndarray, alpha: float) -> np.ndarray:
    """1 + alpha * weight for each event signal (weights in (0, 1], training.signals): no
    activity multiplier and the same whatever the weighting."""
    return (1.0 + alpha * weights).astype(np.float32)


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (float32), so that dot products are cosines; a zero row
    stays zero."""
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)
    return np.ascontiguousarray(unit, dtype=np.float32)


TILE = 512  # movies per tile of NormIndex.tiles


@dataclass(frozen=True)
class NormIndex:
    """The item factors again, longest first, for one user's exact top-n without scoring the
    whole catalog (`training.scoring`): a movie's score x·y is at most ‖x‖‖y‖, so once that
    bound for the next movie falls below the n-th best score, no later movie can enter.

    The factors are stored in tiles of TILE movies, each factor-major (f x TILE), so that
    scoring a tile is BLAS's row-major gemv, ~2x faster than a dot product per movie when the
    factors do not fit in cache; the last tile is padded with zero vectors."""

    order: np.ndarray  # catalog positions, longest factor vector first (ties: lower position)
    rank: np.ndarray  # each position's place in `order`
    norms: np.ndarray  # the factor norms in that order (float64, non-increasing)
    tiles: np.ndarray  # tiles x f x TILE (C-contiguous float32)

    @classmethod
    def of(cls, item_factors: np.ndarray) -> NormIndex:
        items, factors = item_factors.shape
        norms = np.linalg.norm(item_factors.astype(np.float64), axis=1)
        order = np.argsort(-norms, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(items)
        padded = np.zeros((-(-items // TILE) * TILE, factors), dtype=np.float32)
        padded[:items] = item_factors[order]
        tiles = np.ascontiguousarray(padded.reshape(-1, TILE, factors).transpose(0, 2, 1))
        return cls(order, rank, norms[order], tiles)


class ALSModel:
    """User and item factors plus the Gramian needed to fold new users in."""

    def __init__(self, config: ALSConfig, user_factors: np.ndarray, item_factors: np.ndarray):
        self.config = config
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.by_norm = NormIndex.of(self.item_factors)
        self.unit_factors = unit_rows(self.item_factors)  # for cosines ("because you liked ...")
        # YᵀY is shared by every fold-in: computed once, with its eigendecomposition QΛQᵀ, in
        # whose basis YᵀY + λI is diagonal (see `fold_in`), and the item factors in that basis
        # (YQ), so that a short history's fold-in reads its rows instead of multiplying by Q.
        factors64 = self.item_factors.astype(np.float64)
        self._yty = factors64.T @ factors64
        self._eye = np.eye(self._yty.shape[0])
        self._eigenvalues, self._eigenvectors = np.linalg.eigh(self._yty)
        self._eigen_factors = (factors64 @ self._eigenvectors).astype(np.float32)

    @classmethod
    def fit_ratings(
        cls,
        ratings: sp.csr_matrix,
        config: ALSConfig,
        scale_max: float,
        device: str = "cpu",
        signals: sp.csr_matrix | None = None,
    ) -> ALSModel:
        """Fit on a users x items matrix of ratings, turned into confidences (`confidence`,
        with each user's activity multiplier against this matrix's median user), plus
        1 + alpha * weight for each event signal (weights in (0, 1], on movies the user did
        not rate; training.signals)."""
        ratings = ratings.tocsr()
        rated = np.diff(ratings.indptr)
        if config.activity_exponent and rated.any():
            config = config.model_copy(update={"activity_reference": float(np.median(rated[rated > 0]))})
        conf = ratings.copy()
        activity = np.repeat(config.activities(rated), rated)
        conf.data = confidence(ratings.data, config.weighting, config.alpha, scale_max, activity)
        if signals is not None and signals.nnz:
            implicit = signals.copy()
            implicit.data = event_confidence(signals.data, config.alpha)
            conf = (conf + implicit).tocsr()
        return cls.fit(conf, config, device)

    @classmethod
    def fit(cls, confidence_matrix: sp.csr_matrix, config: ALSConfig, device: str = "cpu") -> ALSModel:
        """Fit on a users x items matrix of confidences (`fit_ratings` makes them)."""
        from implicit.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):  # implicit checks (and warns) in its constructor
            model = AlternatingLeastSquares(
                factors=config.factors,
                regularization=config.regularization,
                alpha=1.0,  # the matrix already holds the confidence
                iterations=config.iterations,
                random_state=config.random_state,
                use_gpu=device == "gpu",
                calculate_training_loss=False,
            )
            model.fit(confidence_matrix.tocsr().astype(np.float32), show_progress=False)
        if device == "gpu":
            model = model.to_cpu()
        return cls(config, np.asarray(model.user_factors), np.asarray(model.item_factors))

    def fold_in(self, items: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """Exact least-squares user factors for a history against the fixed item factors.

        Solves (YᵀY + Yᵤᵀ(Cᵤ - I)Yᵤ + λI) x = Yᵤᵀ Cᵤ pᵤ, the same normal equations ALS solves
        for a training user, so a folded-in user scores like a trained one.

        A history shorter than the number of factors (a visitor's few movies, most users) is
        solved as a low-rank update of YᵀY + λI, which is diagonal in YᵀY's eigenbasis
        (Woodbury: an n x n solve instead of factoring the f x f matrix); a longer one by
        Cholesky. Both give the same x up to rounding.
        """
        n, f = len(items), self.item_factors.shape[1]
        if n == 0:
            return np.zeros(f, dtype=np.float32)
        c = np.asarray(conf, dtype=np.float64)
        penalty = self.penalty(n)
        if self.low_rank(c):
            return fold_in_low_rank(*self.eigen, np.asarray(items, dtype=np.int64), c, penalty)
        y = self.item_factors[items].astype(np.float64)
        a = self._yty + penalty * self._eye + (y.T * (c - 1.0)) @ y
        b = y.T @ c
        # a is symmetric positive definite (λ > 0, c ≥ 1): Cholesky.
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, check_finite=False), b).astype(np.float32)

    def penalty(self, n: int) -> float:
        """The λ of a fold-in of n movies (times n where the factors were fit that way)."""
        return self.config.regularization * (n if self.config.weighted_regularization else 1)

    def low_rank(self, c: np.ndarray) -> bool:
        """Whether `fold_in` solves a history with these confidences as a low-rank update:
        shorter than the number of factors, and c ≥ 1 so that (C - I)^½ is real."""
        return 0 < len(c) < self.item_factors.shape[1] and c.min() >= 1.0

    @property
    def eigen(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q, Λ and YQ: the first arguments of `fold_in_low_rank`."""
        return self._eigenvectors, self._eigenvalues, self._eigen_factors

    def save(self, directory: Path) -> None:
        np.save(directory / "als_user_factors.npy", self.user_factors, allow_pickle=False)
        np.save(directory / "als_item_factors.npy", self.item_factors, allow_pickle=False)
        (directory / "als_config.json").write_text(self.config.model_dump_json(indent=2))

    @classmethod
    def load(cls, directory: Path) -> ALSModel:
        config = ALSConfig.model_validate(json.loads((directory / "als_config.json").read_text()))
        return cls(
            config,
            np.load(directory / "als_user_factors.npy", allow_pickle=False),
            np.load(directory / "als_item_factors.npy", allow_pickle=False),
        )


@numba.njit(nogil=True, cache=True)
def fold_in_low_rank(
    eigenvectors: np.ndarray,
    eigenvalues: np.ndarray,
    eigen_factors: np.ndarray,
    items: np.ndarray,
    c: np.ndarray,
    penalty: float,
) -> np.ndarray:
    """`ALSModel.fold_in` for n < f movies with c ≥ 1, compiled: a visitor's request is a few
    small products that numpy would each pay a call for.
    With Yᵤ the movies' factors and YᵀY = QΛQᵀ, x = Q z where
    (S⁻¹ + U Uᵀ) z = g, S = (Λ + λI)⁻¹, g = Qᵀ Yᵤᵀ c and U = Qᵀ Yᵤᵀ (Cᵤ - I)^½; by Woodbury
    z = S g - S U (I + Uᵀ S U)⁻¹ Uᵀ S g: an n x n solve instead of factoring an f x f matrix.
    `eigen_factors` holds YQ, so the rows of Yᵤ Q are read, not computed; sums in float64."""
    n, f = len(items), len(eigenvalues)
    rows = np.empty((n, f))  # Yᵤ Q
    for a in range(n):
        rows[a] = eigen_factors[items[a]]
    s = 1.0 / (eigenvalues + penalty)
    w = np.sqrt(c - 1.0)  # Uᵀ = diag(w) Yᵤ Q
    sg = (c @ rows) * s  # S g
    s_rows = rows * s  # Yᵤ Q S
    inner = rows @ s_rows.T  # made I + Uᵀ S U below: symmetric positive definite
    for a in range(n):
        for b in range(n):
            inner[a, b] *= w[a] * w[b]
        inner[a, a] += 1.0
    solution = np.linalg.solve(inner, w * (rows @ sg))
    z = sg - (solution * w) @ s_rows
    return (eigenvectors @ z).astype(np.float32)
