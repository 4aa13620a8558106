"""Live feedback routes: a user's stored ratings and events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.api.common import TOO_LARGE, UNAUTHORIZED, JSONRoute, Responses
from app.api.users import UserPath
from app.deps import ServicesDep
from app.errors import DatabaseUnavailable, MoviesNotFound, NotRated, RatingOffScale
from app.openapi import errors
from app.schemas import EventsBody, EventsStored, RatingsBody, RatingsPage, StoredRatings
from app.security import require_key

router = APIRouter(route_class=JSONRoute, tags=["feedback"])
MoviePath = Annotated[int, Path(ge=0, le=2**63 - 1, description="The dataset's own movie id.", examples=[1])]
UNAVAILABLE: Responses = {
    503: errors("The database is unavailable; nothing was stored.", DatabaseUnavailable())
}
WRITE_ERRORS: Responses = {
    **UNAUTHORIZED,
    404: errors("A movie id is not in the catalog; nothing was stored.", MoviesNotFound([999999])),
    **TOO_LARGE,
    422: errors(
        "Invalid body (not JSON included) or a rating off the dataset's scale; nothing was stored.",
        RatingOffScale([(1, 9.0)], (0.5, 5.0)),
    ),
    **UNAVAILABLE,
}


@router.post(
    "/users/{user_id}/ratings",
    status_code=201,
    dependencies=[Depends(require_key)],
    response_model=StoredRatings,
    responses=WRITE_ERRORS,
    summary="Store a user's ratings (all or nothing); their recommendations change at once",
    description="A new rating of a movie replaces the user's earlier one. Every movie is checked "
    "against the catalog and every rating against the dataset's scale before anything is stored.",
)
async def post_ratings(user_id: UserPath, body: RatingsBody, services: ServicesDep) -> dict:
    rows = await services.feedback.rate(user_id, [(r.movie_id, r.rating, r.rated_at) for r in body.ratings])
    return {"user_id": user_id, "items": [vars(r) for r in rows]}


@router.delete(
    "/users/{user_id}/ratings/{movie_id}",
    status_code=204,
    dependencies=[Depends(require_key)],
    responses={**UNAUTHORIZED, 404: errors("No stored rating.", NotRated(42, 1)), **UNAVAILABLE},
    summary="Delete a stored rating",
    description="Only ratings stored through this API; the bundle's own ratings change with a rebuild.",
)
async def delete_rating(user_id: UserPath, movie_id: MoviePath, services: ServicesDep) -> Response:
    await services.feedback.unrate(user_id, movie_id)
    return Response(status_code=204)


@router.get(
    "/users/{user_id}/ratings",
    response_model=RatingsPage,
    responses=UNAVAILABLE,
    summary="A user's stored ratings, newest first",
    description="The ratings stored through this API (not the bundle's), paged, with their total.",
)
async def list_ratings(
    user_id: UserPath,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Ratings to skip.")] = 0,
) -> dict:
    rows, total = await services.feedback.page(user_id, limit, offset)
    return {
        "user_id": user_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [vars(r) for r in rows],
    }


@router.post(
    "/users/{user_id}/events",
    status_code=201,
    dependencies=[Depends(require_key)],
    response_model=EventsStored,
    responses=WRITE_ERRORS,
    summary="Store views, clicks, plays (implicit signals, weaker than ratings)",
    description="Each event is an implicit signal for the user's next recommendations (folded "
    "into the ALS model at once): `click` and `view` show interest, `play` and `finish` also mark "
    "the movie watched, so it is not recommended back. A rating of the movie outweighs its events; "
    "events never change rating predictions.",
)
async def post_events(user_id: UserPath, body: EventsBody, services: ServicesDep) -> dict:
    stored = await services.feedback.add_events(user_id, [(e.movie_id, e.kind, e.at) for e in body.events])
    return {"user_id": user_id, "stored": stored}
