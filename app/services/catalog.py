"""The movie catalog: lookups, title search, genres, filters and popularity charts."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache

from app.errors import DomainError, UnknownMovie, UnknownMovies
from app.services.search import TitleIndex
from training.bundle import RankerBundle
from training.interactions import IdIndex

# Title searches kept ranked (before filters and paging), by query, within this many bytes:
# the short prefixes a search box sends first ("t", "th", "the") match a third of the titles,
# and ranking them took 34-58 ms on a 58k-movie catalog.
SEARCH_CACHE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Filters:
    genre: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    exclude: tuple[int, ...] = ()


def _cache_size(ranked: np.ndarray) -> int:
    return ranked.nbytes + 100  # and the entry's own overhead, so an empty ranking counts


def _optional_int(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[call-overload]


class Catalog:
    def __init__(self, bundle: RankerBundle, searchable: bool = True):
        """`searchable=False` leaves out the title index (57 MB and 0.6 s for 58k titles), for
        a process that never searches (the visitor process)."""
        movies = bundle.movies
        self.index = IdIndex(movies["movie_id"].to_numpy(np.int64))
        self.size = len(movies)
        self.years = movies["year"].astype("float64").to_numpy()  # NaN = unknown
        genre_lists = [g.split("|") if g else [] for g in movies["genres"]]
        self.cards: list[dict[str, Any]] = [
            {
                "movie_id": int(movie_id),
                "title": str(title),
                "year": _optional_int(year),
                "genres": genres,
                "imdb_id": _optional_int(imdb_id),
                "tmdb_id": _optional_int(tmdb_id),
            }
            for movie_id, title, year, imdb_id, tmdb_id, genres in zip(
                movies["movie_id"].tolist(),
                movies["title"].tolist(),
                movies["year"].tolist(),
                movies["imdb_id"].tolist(),
                movies["tmdb_id"].tolist(),
                genre_lists,
                strict=True,
            )
        ]
        # A movie as a recommendation's "because" (read-only: shared by every answer).
        self.sources = [{"movie_id": card["movie_id"], "title": card["title"]} for card in self.cards]
        self.n_ratings = movies["n_ratings"].to_numpy(np.int64)
        self.mean_rating = movies["mean_rating"].to_numpy(np.float64)
        # Most rated first, ties by position: the order of an empty search.
        self._by_popularity = np.lexsort((np.arange(self.size), -self.n_ratings))
        self._titles = (
            TitleIndex([card["title"] for card in self.cards], [card["year"] for card in self.cards])
            if searchable
            else None
        )
        # Searches run in the thread pool: the kept rankings are read and written under a lock.
        self._searches: LRUCache[str, np.ndarray] = LRUCache(SEARCH_CACHE_BYTES, getsizeof=_cache_size)
        self._searches_lock = threading.Lock()
        names = sorted({g for gs in genre_lists for g in gs})
        self._genre_key = {name.casefold(): name for name in names}
        self.genre_masks = {name: np.zeros(self.size, dtype=bool) for name in names}
        for position, genres in enumerate(genre_lists):
            for genre in genres:
                self.genre_masks[genre][position] = True
        self.charts = {
            (str(chart), str(genre)): group.sort_values("rank")["movie_id"].pipe(
                lambda ids: self.index.positions(ids.to_numpy())
            )
            for (chart, genre), group in bundle.charts.groupby(["chart", "genre"], sort=False)
        }
        self.chart_scores = {
            (str(chart), str(genre)): group.sort_values("rank")["score"].to_numpy()
            for (chart, genre), group in bundle.charts.groupby(["chart", "genre"], sort=False)
        }

    # lookups -------------------------------------------------------------------------------
    def position(self, movie_id: int) -> int:
        position = self.index.position(movie_id)
        if position < 0:
            raise UnknownMovie(movie_id)
        return position

    def positions(
        self, movie_ids: list[int], error: Callable[[list[int]], DomainError] = UnknownMovies
    ) -> np.ndarray:
        """Catalog positions of the ids; `error(unknown_ids)` is raised when any is unknown."""
        positions = self.index.positions(movie_ids)
        unknown = [m for m, p in zip(movie_ids, positions.tolist(), strict=True) if p < 0]
        if unknown:
            raise error(unknown)
        return positions

    def card(self, position: int, score: float | None = None) -> dict[str, Any]:
        card = dict(self.cards[position])
        if score is not None:
            card["score"] = round(float(score), 6)
        return card

    def genre_name(self, genre: str) -> str | None:
        return self._genre_key.get(genre.casefold())

    def genres(self) -> list[tuple[str, int]]:
        return [(name, int(mask.sum())) for name, mask in self.genre_masks.items()]

    # filters -------------------------------------------------------------------------------
    def eligible(self, filters: Filters) -> np.ndarray | None:
        """Boolean mask of movies passing the filters, or None when there are none."""
        mask: np.ndarray | None = None

        def narrow(other: np.ndarray) -> None:
            nonlocal mask
            mask = other if mask is None else mask & other

        if filters.genre is not None:
            name = self.genre_name(filters.genre)
            narrow(self.genre_masks[name] if name else np.zeros(self.size, dtype=bool))
        if filters.year_from is not None:
            narrow(self.years >= filters.year_from)
        if filters.year_to is not None:
            narrow(self.years <= filters.year_to)
        if filters.exclude:
            keep = np.ones(self.size, dtype=bool)
            found = self.index.positions(np.asarray(filters.exclude, dtype=np.int64))
            keep[found[found >= 0]] = False
            narrow(keep)
        return mask

    # search and charts ---------------------------------------------------------------------
    def search(self, query: str, filters: Filters, limit: int, offset: int) -> tuple[int, list[int]]:
        """(total, positions): title matches best tier first (app.services.search), then by
        popularity; every eligible movie, by popularity, for an empty query."""
        mask = self.eligible(filters)
        query = query.strip()
        ranked = self._ranked(query) if query else self._by_popularity
        hits = ranked if mask is None else ranked[mask[ranked]]
        return len(hits), hits[offset : offset + limit].tolist()

    def _ranked(self, query: str) -> np.ndarray:
        """Every title the query matches, ranked; kept for the same query again."""
        with self._searches_lock:
            ranked = self._searches.get(query)
        if ranked is not None:
            return ranked
        if self._titles is None:
            raise RuntimeError("this catalog was made without its title index (searchable=False)")
        found = np.array(self._titles.matches(query), dtype=np.int64).reshape(-1, 2)
        tiers, positions = found[:, 0], found[:, 1]
        ranked = positions[np.lexsort((positions, -self.n_ratings[positions], tiers))]
        ranked.flags.writeable = False  # shared by the threads that search
        with self._searches_lock, contextlib.suppress(ValueError):  # larger than the budget
            self._searches[query] = ranked
        return ranked

    def chart(self, name: str, filters: Filters, k: int, min_ratings: int = 0) -> list[tuple[int, float]]:
        genre = ""
        if filters.genre is not None:
            genre = self.genre_name(filters.genre) or ""
            if not genre:
                return []
        positions = self.charts.get((name, genre), np.zeros(0, dtype=np.int64))
        scores = self.chart_scores.get((name, genre), np.zeros(0))
        keep = np.ones(len(positions), dtype=bool)
        mask = self.eligible(Filters(None, filters.year_from, filters.year_to, filters.exclude))
        if mask is not None:
            keep &= mask[positions]
        if min_ratings:
            keep &= self.n_ratings[positions] >= min_ratings
        chosen = np.flatnonzero(keep)[:k]
        return [(int(positions[i]), float(scores[i])) for i in chosen]
