"""Visitor recommendations and rating predictions."""

from __future__ import annotations

from operator import itemgetter

import numpy as np
import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.api.common import TOO_LARGE, UNKNOWN_MOVIES, JSONRoute, check_genre, keep, rendered
from app.deps import ServicesDep
from app.schemas import PredictionRequest, PredictionResponse, VisitorRecommendations, VisitorRequest
from app.services.catalog import Filters

router = APIRouter(route_class=JSONRoute, tags=["recommendations"])


@router.post(
    "/recommendations",
    response_model=VisitorRecommendations,
    responses=UNKNOWN_MOVIES,
    summary="Recommendations for a visitor from movies they rated or liked",
    description="The ratings are folded into the ALS model (no retraining); "
    "a liked movie counts as a top rating.",
)
async def visitor_recommendations(body: VisitorRequest, services: ServicesDep) -> Response:
    top = services.recommender.scale[1]
    rated = {r.movie_id: r.rating for r in body.ratings}
    for movie_id in body.liked:
        rated.setdefault(movie_id, top)
    filters = Filters(body.genre, body.year_from, body.year_to, tuple(body.exclude))
    # The answer depends on the bundle and the body alone: kept rendered per bundle, like the
    # charts (visitors picking from the same onboarding grid send the same movies).
    key = ("visitor", tuple(sorted(rated.items())), body.k, filters)
    if (answer := rendered(services.rendered, key)) is not None:
        return answer
    check_genre(services.catalog, body.genre, "body")
    # The rest leaves the event loop: the movies' positions and the ratings' check, the
    # fold-in, the ranking and the answer's encoding (a plain `def` route would send the
    # whole route, body handling included, to the thread pool), in one batch with the other
    # visitors that arrive meanwhile (Services.visitors).
    encoded = await services.visitors(rated, body.k, filters)
    return keep(encoded, services.rendered, key)


@router.post(
    "/predictions",
    response_model=PredictionResponse,
    responses=TOO_LARGE,
    summary="Predict star ratings for (user, movie) pairs",
    description="1 to 10,000 pairs, answered in request order; unknown users or movies get a prediction "
    "from what is known (biases, global mean).",
)
async def predictions(body: PredictionRequest, services: ServicesDep) -> Response:
    users = np.fromiter(map(itemgetter("user_id"), body.pairs), dtype=np.int64, count=len(body.pairs))
    movies = np.fromiter(map(itemgetter("movie_id"), body.pairs), dtype=np.int64, count=len(body.pairs))
    stored = await services.feedback.stored_many(np.unique(users).tolist())
    result = await run_in_threadpool(services.recommender.predict, users, movies, stored)
    columns = zip(
        users.tolist(),
        movies.tolist(),
        np.round(result["rating"].astype(np.float64), 4).tolist(),
        result["known_user"].tolist(),
        result["known_movie"].tolist(),
        strict=True,
    )
    # Up to 10,000 rows built from plain Python values and encoded by orjson, rather than
    # validated item by item against the response model (which documents the same shape).
    rows = [
        {"user_id": u, "movie_id": m, "rating": r, "known_user": ku, "known_movie": km}
        for u, m, r, ku, km in columns
    ]
    return Response(orjson.dumps({"predictions": rows}), media_type="application/json")
