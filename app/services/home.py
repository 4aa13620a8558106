"""The home page: rows a client renders, their kinds, titles and order from a config file.

An operator changes the page by editing the JSON file named by HOME_CONFIG (default
app/home.json); it is validated at start-up. No movie appears twice on a page, and a row
that has nothing to show (e.g. "because you watched" for a user with no history) is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.services.catalog import Filters
from app.services.recommender import Ranking, Recommender
from app.services.search import readable


class RowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["for_you", "because_you_watched", "trending", "top_rated", "most_rated"]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    k: int = Field(10, ge=1, le=100)
    rows: int = Field(1, ge=1, le=10, description="For because_you_watched: how many rows.")
    genre: str | None = None
    min_ratings: int = Field(0, ge=0)


class HomeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[RowConfig] = Field(min_length=1, max_length=50)

    @classmethod
    def load(cls, path: Path) -> HomeConfig:
        return cls.model_validate_json(path.read_text())


def home_page(
    recommender: Recommender, config: HomeConfig, user_id: int, ranking: Ranking | None
) -> list[dict[str, Any]]:
    """The page for a user with their ranking (None: no history; their rows are left out)."""
    catalog = recommender.catalog
    shown: set[int] = set()
    page: list[dict[str, Any]] = []

    def add(title: str, kind: str, items: list[dict[str, Any]]) -> None:
        if items:
            shown.update(item["movie_id"] for item in items)
            # One card shape on every row: `because` explains a for_you pick, null elsewhere.
            cards = [{**item, "because": item.get("because")} for item in items]
            page.append({"title": title, "kind": kind, "items": cards})

    for row in config.rows:
        filters = Filters(genre=row.genre, exclude=tuple(shown))
        if row.kind == "for_you":
            if ranking is not None:
                add(row.title, row.kind, recommender.answer(user_id, ranking, row.k, filters)["items"])
        elif row.kind == "because_you_watched":
            if ranking is not None:
                for because in recommender.because_you_watched(ranking.history, row.rows, row.k, shown):
                    title = row.title.replace("{movie}", readable(because["because"]["title"]))
                    add(title, row.kind, because["items"])
        else:
            chart = catalog.chart(row.kind, filters, row.k, row.min_ratings)
            add(row.title, row.kind, [catalog.card(p, s) for p, s in chart])
    return page
