"""Query parameters and error documentation shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from app.schemas import ErrorBody

KQuery = Annotated[int, Query(ge=1, le=100, description="How many items to return (1-100).", examples=[10])]
GenreQuery = Annotated[
    str | None,
    Query(max_length=100, description="Only movies of this genre (case-insensitive).", examples=["Comedy"]),
]
YearFrom = Annotated[
    int | None, Query(ge=1800, le=2200, description="Only movies released in or after this year.")
]
YearTo = Annotated[
    int | None, Query(ge=1800, le=2200, description="Only movies released in or before this year.")
]
ExcludeQuery = Annotated[
    list[int] | None, Query(max_length=1000, description="Movie ids never to return (repeat the parameter).")
]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown movie id."}}
UNKNOWN_MOVIES: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid body, or movie ids not in the catalog."}
}
