"""Query parameters and error documentation shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import Field

from app.schemas import ErrorBody
from app.services.catalog import Filters

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
    list[Annotated[int, Field(ge=0, le=2**63 - 1)]] | None,
    Query(max_length=1000, description="Movie ids never to return (repeat the parameter)."),
]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown movie id."}}
UNKNOWN_MOVIES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON."},
    422: {"description": "Invalid body, or movie ids not in the catalog."},
}
BAD_BODY: dict[int | str, dict[str, Any]] = {400: {"description": "The body is not valid JSON."}}


def list_filters(
    genre: GenreQuery = None, year_from: YearFrom = None, year_to: YearTo = None, exclude: ExcludeQuery = None
) -> Filters:
    """The filters a ranked list accepts, applied before the cut to k."""
    return Filters(genre, year_from, year_to, tuple(exclude or ()))


FiltersDep = Annotated[Filters, Depends(list_filters)]
