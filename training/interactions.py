"""Id mappings and the sparse user x movie matrices the models train on."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

# A dense id -> position table is kept when it costs at most this many entries beyond 4 per
# id (MovieLens and Netflix ids are small non-negative integers): one array read per lookup
# instead of a binary search.
_DENSE_SLACK = 1 << 20
# Up to this many ids in a list are looked up one by one: cheaper than numpy's calls.
_FEW = 32


@dataclass(frozen=True)
class IdIndex:
    """Sorted dataset ids <-> dense row/column positions."""

    ids: np.ndarray  # int64, sorted, unique
    _table: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = self.ids
        table = None
        if len(ids) and ids[0] >= 0 and ids[-1] < 4 * len(ids) + _DENSE_SLACK:
            table = np.full(int(ids[-1]) + 1, -1, dtype=np.int32)
            table[ids] = np.arange(len(ids), dtype=np.int32)
        object.__setattr__(self, "_table", table)

    @classmethod
    def of(cls, values: np.ndarray | pd.Series) -> IdIndex:
        return cls(np.unique(np.asarray(values, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, values: np.ndarray | pd.Series | list[int]) -> np.ndarray:
        """Positions of values; -1 where a value is not in the index."""
        if isinstance(values, list) and len(values) <= _FEW:  # a request's few ids
            return np.fromiter(map(self.position, values), dtype=np.int64, count=len(values))
        values = np.asarray(values, dtype=np.int64)
        if self._table is not None:
            inside = (values >= 0) & (values < len(self._table))
            return np.where(inside, self._table[np.where(inside, values, 0)], -1).astype(np.int64)
        pos = np.searchsorted(self.ids, values)
        pos = np.minimum(pos, len(self.ids) - 1) if len(self.ids) else np.zeros_like(pos)
        found = len(self.ids) > 0
        hit = (self.ids[pos] == values) if found else np.zeros(values.shape, bool)
        return np.where(hit, pos, -1)

    def position(self, value: int) -> int:
        """One value's position (-1 if absent), without numpy's per-call overhead: a request
        looks up one id."""
        if self._table is not None:
            return int(self._table[value]) if 0 <= value < len(self._table) else -1
        at = bisect.bisect_left(self.ids, value)
        return at if at < len(self.ids) and int(self.ids[at]) == value else -1


def user_item_matrix(
    ratings: pd.DataFrame, users: IdIndex, movies: IdIndex, values: np.ndarray | None = None
) -> sp.csr_matrix:
    """users x movies CSR with the given values (the ratings by default); unknown ids dropped."""
    rows = users.positions(ratings["user_id"].to_numpy())
    cols = movies.positions(ratings["movie_id"].to_numpy())
    data = ratings["rating"].to_numpy(np.float32) if values is None else np.asarray(values, np.float32)
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix(
        (data[keep], (rows[keep], cols[keep])), shape=(len(users), len(movies)), dtype=np.float32
    )
    matrix.sum_duplicates()
    return matrix
