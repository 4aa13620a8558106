"""The known-user ranking, shared by evaluation and serving so both score the same way.

score(u) = w_als · (Vᵀ x_u) + w_ease · (h_u B)
where x_u are the user's ALS factors (trained, or folded in from their history), h_u their
binary history row and B the pruned EASE weights (absent for catalogs too large for EASE).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.models.als import ALSModel, confidence


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
