"""Recommendations and rating predictions over the loaded bundle.

All scoring goes through training.scoring.Ranker and training.models.rating.RatingModel,
the same code the evaluation measured.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from cachetools import Cache, LRUCache, TTLCache

from app.errors import RatingOffScale
from app.metrics import Metrics
from app.services.catalog import Catalog, Filters
from training.bundle import Bundle, RankerBundle
from training.interactions import IdIndex

RANKING_DEPTH = 500  # movies kept per computed user ranking; deeper filters score in full
CHEAP_HISTORY = 1000  # rated movies up to which reading a stored ranking stays on the event loop


_TOKENS = itertools.count()  # Ranking.token


@dataclass(frozen=True)
class Stored:
    """A user's live feedback from the database, as catalog positions: their ratings, and the
    event signals (strongest weight in (0, 1], see training.signals) of movies they did not
    rate, with the ones they watched."""

    ratings: Mapping[int, float] = field(default_factory=dict)
    signals: Mapping[int, float] = field(default_factory=dict)
    watched: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.ratings or self.signals)


@dataclass(frozen=True)
class History:
    """A user's movies (sorted catalog positions) with, for each, the rating or, for a movie
    known only from events, its signal weight times the top of the scale; whether that is a
    real rating; and whether the movie counts as seen (rated or watched: never recommended)."""

    positions: np.ndarray
    ratings: np.ndarray
    rated: np.ndarray
    seen: np.ndarray

    @classmethod
    def of_ratings(cls, positions: np.ndarray, ratings: np.ndarray) -> History:
        every = np.ones(len(positions), dtype=bool)
        return cls(positions, np.asarray(ratings, np.float32), every, every)


@dataclass(frozen=True)
class Ranking:
    """A user's cached ranking: unseen movies best first, their scores, for each the liked
    movie it is explained by (its "because", -1 for none; see _because), and the history.
    `complete`: it holds every unseen movie (else filters that leave fewer than k in it are
    answered by scoring the catalog).

    `token` names it in the answers kept rendered (Services.rendered): they are kept under it,
    so a ranking replaced by a write of the user's feedback (or a bundle reload) has its
    answers never asked for again, and they age out of that LRU."""

    positions: np.ndarray
    scores: np.ndarray
    because: np.ndarray
    history: History
    vector: np.ndarray
    complete: bool
    token: int = field(default_factory=lambda: next(_TOKENS), compare=False, repr=False)


def per_user_cache(size: int, seconds: float) -> Cache[int, Any]:
    """A bounded per-user cache; entries also expire after `seconds` when that is set (> 0)."""
    return TTLCache(maxsize=size, ttl=seconds) if seconds > 0 else LRUCache(maxsize=size)


class VisitorRanker:
    """Recommendations for a visitor from the movies they rate: all that needs is the catalog
    and the ranker, so the visitor process (app.services.visitor_process) holds only this."""

    def __init__(self, bundle: RankerBundle, catalog: Catalog):
        self.catalog = catalog
        self.ranker = bundle.ranker
        self.scale = bundle.rating_scale
        # Compile a visitor's kernel (fold-in, ranking and "because" in one call), or load it
        # from numba's cache, now rather than on a request.
        self.for_visitor(np.zeros(1, np.int64), np.full(1, self.scale[1], np.float32), 1, Filters())

    def visitor_answer(self, rated: Mapping[int, float], k: int, filters: Filters) -> bytes:
        """POST /recommendations' answer for a visitor's ratings by movie id, encoded:
        `{"items": for_visitor(...)}`. Unknown movies raise UnknownMovies, ratings off the
        scale RatingOffScale. Made in the thread pool (Services.visitors), so that the event
        loop only hands the bytes over: here the cards are encoded where they were just built
        (app.api.common.encoded says why)."""
        positions = self.catalog.positions(list(rated))
        RatingOffScale.check(rated.items(), self.scale, stored=False)
        ratings = np.fromiter(rated.values(), dtype=np.float32, count=len(rated))
        return orjson.dumps({"items": self.for_visitor(positions, ratings, k, filters)})

    def for_visitor(
        self, positions: np.ndarray, ratings: np.ndarray, k: int, filters: Filters
    ) -> list[dict[str, Any]]:
        """A visitor's top-k from the movies they rated (positions), folded into ALS: every
        movie they rated counts as seen, and each pick's "because" is one they liked."""
        return self._items(*self.ranker.visitor_best(positions, ratings, k, self.catalog.eligible(filters)))

    def _items(self, positions: np.ndarray, scores: np.ndarray, because: np.ndarray) -> list[dict[str, Any]]:
        """Ranked movies as answered: each card with its score and its "because" (or None)."""
        cards, sources = self.catalog.cards, self.catalog.sources
        rounded = scores.astype(np.float64).round(6).tolist()  # as Catalog.card, in one call
        return [
            {**cards[p], "score": s, "because": sources[b] if b >= 0 else None}
            for p, s, b in zip(positions.tolist(), rounded, because.tolist(), strict=True)
        ]


class Recommender(VisitorRanker):
    """Everything else the API answers from the whole bundle: known users' rankings (with
    their live feedback), similar movies, "because you watched" rows and rating predictions."""

    def __init__(
        self,
        bundle: Bundle,
        catalog: Catalog,
        metrics: Metrics | None = None,
        cache_size: int = 10_000,
        cache_seconds: float = 0.0,
    ):
        super().__init__(bundle, catalog)
        self.metrics = metrics
        self.bundle = bundle
        self.users = IdIndex(bundle.user_ids)
        self.history = bundle.history.tocsr()
        self._top_positions = bundle.user_top_positions
        self._top_scores = bundle.user_top_scores
        # Per-user rankings, computed on first use; the feedback work invalidates on writes.
        self._rankings: Cache[int, Ranking] = per_user_cache(cache_size, cache_seconds)  # by user id
        self._lock = threading.Lock()
        self._generation = 0
        # Compile the rating prediction's kernel (or load it from numba's cache) now, not on a request.
        bundle.rating_model.predict(np.zeros(1, np.int64), np.zeros(1, np.int64), self.history)

    # users ---------------------------------------------------------------------------------
    def user_row(self, user_id: int) -> int:
        return self.users.position(user_id)

    def user_history(self, user_id: int) -> History:
        row = self.user_row(user_id)
        if row < 0:
            return History.of_ratings(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        start, end = self.history.indptr[row], self.history.indptr[row + 1]
        return History.of_ratings(
            self.history.indices[start:end].astype(np.int64), self.history.data[start:end]
        )

    def history_of(self, user_id: int, stored: Stored | None = None) -> History:
        """The user's history: the bundle's training ratings, the stored event signals of
        movies they rated nowhere, and the stored ratings on top (a stored rating wins)."""
        base = self.user_history(user_id)
        if not stored:
            return base
        top = self.scale[1]
        # position -> (rating or weight x top, rated, seen)
        entries = {
            p: (r, True, True) for p, r in zip(base.positions.tolist(), base.ratings.tolist(), strict=True)
        }
        for p, weight in stored.signals.items():
            if p not in entries:
                entries[p] = (weight * top, False, p in stored.watched)
        entries.update((p, (r, True, True)) for p, r in stored.ratings.items())
        positions = np.fromiter(entries.keys(), dtype=np.int64, count=len(entries))
        order = np.argsort(positions)
        values = list(entries.values())
        return History(
            positions[order],
            np.array([v[0] for v in values], dtype=np.float32)[order],
            np.array([v[1] for v in values], dtype=bool)[order],
            np.array([v[2] for v in values], dtype=bool)[order],
        )

    @property
    def generation(self) -> int:
        """Bumped by every invalidation: a ranking computed from feedback read before a later
        write is not cached (see ranking_for's `since`)."""
        return self._generation

    def invalidate(self, user_id: int) -> None:
        """Forget the user's cached ranking (their feedback changed)."""
        with self._lock:
            self._generation += 1
            self._rankings.pop(user_id, None)

    def cached_ranking(self, user_id: int) -> Ranking | None:
        """The user's cached ranking, if any (counted as a cache hit or miss)."""
        with self._lock:
            ranking = self._rankings.get(user_id)
        if self.metrics:
            (self.metrics.ranking_hits if ranking is not None else self.metrics.ranking_misses).inc()
        return ranking

    def ranking_is_cheap(self, user_id: int, stored: Stored | None) -> bool:
        """Whether ranking_for only reads the build's table for this user, for a history short
        enough that explaining the picks is small work: cheap enough for the event loop."""
        row = self.user_row(user_id)
        return (
            row >= 0
            and not stored
            and self._top_positions.shape[1] > 0
            and self.history.indptr[row + 1] - self.history.indptr[row] <= CHEAP_HISTORY
        )

    def ranking_for(
        self, user_id: int, stored: Stored | None = None, since: int | None = None
    ) -> Ranking | None:
        """The user's ranking, computed and cached: a bundle user with no stored feedback reads
        theirs from the build's table, anyone with stored feedback is folded in from their whole
        history; None for someone with no history at all.

        `since` is the `generation` read before `stored` was: the new ranking is cached only
        if no write came in between (else the next read computes it from fresher feedback)."""
        history = self.history_of(user_id, stored)
        row = self.user_row(user_id)
        if row >= 0 and not stored:
            ranking = self._stored_ranking(row, history)
        elif len(history.positions):
            vector = self.ranker.fold_in(history.positions, history.ratings, history.rated)
            ranking = self._ranking(vector, history)
        else:
            return None
        with self._lock:
            if since is None or since == self._generation:
                self._rankings[user_id] = ranking
        return ranking

    def answer(self, user_id: int, ranking: Ranking | None, k: int, filters: Filters) -> dict[str, Any]:
        """Top-k from the user's ranking or, when the filters reach deeper than it, scored in
        full; the popular fallback for a user without one."""
        if ranking is None:
            return self._fallback(user_id, k, filters)
        result = self.from_ranking(user_id, ranking, k, filters)
        if result is None:
            items = self._rank(ranking.vector, ranking.history, k, filters)
            result = {"user_id": user_id, "known_user": True, "fallback": None, "items": items}
        return result

    def _fallback(self, user_id: int, k: int, filters: Filters) -> dict[str, Any]:
        chart = self.catalog.chart("trending", filters, k)
        items = [{**self.catalog.card(p, s), "because": None} for p, s in chart]
        return {"user_id": user_id, "known_user": False, "fallback": "trending", "items": items}

    def _stored_ranking(self, row: int, history: History) -> Ranking:
        """A bundle user's ranking as the build stored it (Ranker.best_unseen): the same
        order and scores `_ranking` computes from their factors, read instead of scored."""
        vector = self.ranker.als.user_factors[row]
        if self._top_positions.shape[1] == 0:  # the build stored none
            return self._ranking(vector, history)
        positions = self._top_positions[row]
        keep = positions >= 0
        positions = positions[keep].astype(np.int64)
        because = self._because(positions, history)
        return Ranking(positions, self._top_scores[row][keep], because, history, vector, not keep.all())

    def _ranking(self, vector: np.ndarray, history: History) -> Ranking:
        """The user's best RANKING_DEPTH unseen movies, unfiltered, best first."""
        best, scores = self._best_unseen(vector, history, RANKING_DEPTH, None)
        complete = len(best) < RANKING_DEPTH
        return Ranking(best, scores, self._because(best, history), history, vector, complete)

    def _best_unseen(
        self, vector: np.ndarray, history: History, n: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The catalog scored for a user: their best `n` movies (positions, scores) among the
        unseen ones that `mask` (when given) lets through, best first; fewer where none remain."""
        seen = history.positions[history.seen]
        return self.ranker.user_best_unseen(vector, history.positions, seen, n, mask)

    def from_ranking(
        self, user_id: int, ranking: Ranking | None, k: int, filters: Filters
    ) -> dict[str, Any] | None:
        """Top-k read off the user's ranking (the fallback without one): cheap enough for the
        event loop. None when the filters leave fewer than k movies in an incomplete ranking
        (`answer` then scores the catalog)."""
        if ranking is None:
            return self._fallback(user_id, k, filters)
        mask = self.catalog.eligible(filters)
        keep = (
            np.flatnonzero(mask[ranking.positions]) if mask is not None else np.arange(len(ranking.positions))
        )
        if len(keep) < k and not ranking.complete:
            return None
        chosen = keep[:k]
        items = self._items(ranking.positions[chosen], ranking.scores[chosen], ranking.because[chosen])
        return {"user_id": user_id, "known_user": True, "fallback": None, "items": items}

    def _rank(self, vector: np.ndarray, history: History, k: int, filters: Filters) -> list[dict[str, Any]]:
        """Top-k of the catalog scored for a user, filtered."""
        seen = history.positions[history.seen]
        mask = self.catalog.eligible(filters)
        found = self.ranker.user_best_unseen(vector, history.positions, seen, k, mask)
        return self._items(*found, self._because(found[0], history))

    def _because(self, picks: np.ndarray, history: History) -> np.ndarray:
        """For each pick, the liked movie (seen, rated at least the user's median) most similar
        to it by ALS cosine, as a catalog position; -1 when the user liked none."""
        return self.ranker.because(picks, history.positions[history.seen], history.ratings[history.seen])

    # similar and because-you-watched -------------------------------------------------------
    def similar(self, position: int, k: int, filters: Filters) -> list[dict[str, Any]]:
        neighbours = self.bundle.similar_positions[position]
        scores = self.bundle.similar_scores[position]
        keep = neighbours >= 0
        mask = self.catalog.eligible(filters)
        if mask is not None:
            keep &= mask[np.maximum(neighbours, 0)]
        chosen = np.flatnonzero(keep)[:k]
        return [
            self.catalog.card(p, s)
            for p, s in zip(neighbours[chosen].tolist(), scores[chosen].tolist(), strict=True)
        ]

    def because_you_watched(
        self, history: History, rows: int, k: int, exclude: set[int] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of movies similar to the highest-rated (or watched) movies of a user's history
        (history_of); nothing seen, no repeats.

        `exclude` holds movie ids already shown elsewhere on the page."""
        seen, ratings = history.positions[history.seen], history.ratings[history.seen]
        if len(seen) == 0:
            return []
        order = np.lexsort((seen, -ratings))
        used = set(seen.tolist())
        if exclude:
            excluded = self.catalog.index.positions(np.fromiter(exclude, dtype=np.int64))
            used.update(excluded[excluded >= 0].tolist())
        result: list[dict[str, Any]] = []
        for seed in seen[order]:
            if len(result) == rows:
                break
            picks = []
            for neighbour, score in zip(
                self.bundle.similar_positions[seed], self.bundle.similar_scores[seed], strict=True
            ):
                if neighbour < 0 or neighbour in used:
                    continue
                picks.append((int(neighbour), float(score)))
                if len(picks) == k:
                    break
            if not picks:
                continue
            used.update(p for p, _ in picks)
            result.append(
                {
                    "because": self.catalog.card(int(seed)),
                    "items": [self.catalog.card(p, s) for p, s in picks],
                }
            )
        return result

    # predictions ---------------------------------------------------------------------------
    def predict(
        self,
        user_ids: np.ndarray,
        movie_ids: np.ndarray,
        stored: Mapping[int, Stored] | None = None,
    ) -> dict[str, np.ndarray]:
        """Rating predictions in request order. Users with stored ratings are predicted from
        their whole rating history, folded in (events are not ratings: they play no part)."""
        users = self.users.positions(user_ids)
        movies = self.catalog.index.positions(movie_ids)
        model = self.bundle.rating_model
        ratings = model.predict(users, movies, self.history)
        known_user = users >= 0
        for user_id, feedback in (stored or {}).items():
            if not feedback.ratings:
                continue
            pairs = np.flatnonzero(user_ids == user_id)
            history = self.history_of(user_id, Stored(ratings=feedback.ratings))
            ratings[pairs] = model.predict_for(history.positions, history.ratings, movies[pairs])
            known_user[pairs] = True
        return {"rating": ratings, "known_user": known_user, "known_movie": movies >= 0}
