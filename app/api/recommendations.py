"""Visitor recommendations and rating predictions."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from app.api.common import UNKNOWN_MOVIES
from app.deps import ServicesDep
from app.schemas import PredictionRequest, PredictionResponse, VisitorRecommendations, VisitorRequest
from app.services.catalog import Filters

router = APIRouter(tags=["recommendations"])


@router.post(
    "/recommendations",
    response_model=VisitorRecommendations,
    responses=UNKNOWN_MOVIES,
    summary="Recommendations for a visitor from movies they rated or liked",
    description="The ratings are folded into the ALS model (no retraining); "
    "a liked movie counts as a top rating.",
)
def visitor_recommendations(body: VisitorRequest, services: ServicesDep) -> dict:
    top = services.recommender.scale[1]
    rated = {r.movie_id: r.rating for r in body.ratings}
    for movie_id in body.liked:
        rated.setdefault(movie_id, top)
    positions = services.catalog.positions(list(rated))
    ratings = np.clip(np.fromiter(rated.values(), dtype=np.float32), *services.recommender.scale)
    filters = Filters(body.genre, body.year_from, body.year_to, tuple(body.exclude))
    return {"items": services.recommender.for_visitor(positions, ratings, body.k, filters)}


@router.post(
    "/predictions",
    response_model=PredictionResponse,
    summary="Predict star ratings for (user, movie) pairs",
    description="1 to 10,000 pairs, answered in request order; unknown users or movies get a prediction "
    "from what is known (biases, global mean).",
)
def predictions(body: PredictionRequest, services: ServicesDep) -> dict:
    users = np.fromiter((p.user_id for p in body.pairs), dtype=np.int64, count=len(body.pairs))
    movies = np.fromiter((p.movie_id for p in body.pairs), dtype=np.int64, count=len(body.pairs))
    result = services.recommender.predict(users, movies)
    return {
        "predictions": [
            {
                "user_id": int(u),
                "movie_id": int(m),
                "rating": round(float(r), 4),
                "known_user": bool(ku),
                "known_movie": bool(km),
            }
            for u, m, r, ku, km in zip(
                users, movies, result["rating"], result["known_user"], result["known_movie"], strict=True
            )
        ]
    }
