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
from app.services.recommender import Recommender, Stored


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
    recommender: Recommender,
    config: HomeConfig,
    user_id: int,
    stored: Stored | None = None,
    since: int | None = None,
) -> list[dict[str, Any]]:
    catalog = recommender.catalog
    shown: set[int] = set()
    page: list[dict[str, Any]] = []

    def add(title: str, kind: str, items: list[dict[str, Any]]) -> None:
        if items:
            shown.update(item["movie_id"] for item in items)
            page.append({"title": title, "kind": kind, "items": items})

    for row in config.rows:
        filters = Filters(genre=row.genre, exclude=tuple(shown))
        if row.kind == "for_you":
            result = recommender.for_user(user_id, row.k, filters, stored, since)
            if result["known_user"]:
                add(row.title, row.kind, result["items"])
        elif row.kind == "because_you_watched":
            for because in recommender.because_you_watched(user_id, row.rows, row.k, shown, stored):
                add(row.title.replace("{movie}", because["because"]["title"]), row.kind, because["items"])
        else:
            chart = catalog.chart(row.kind, filters, row.k, row.min_ratings)
            add(row.title, row.kind, [catalog.card(p, s) for p, s in chart])
    return page
