"""Per-user routes: recommendations and because-you-watched rows."""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from app.api.common import FiltersDep, JSONRoute, KQuery, check_genre, encoded, keep, render, rendered
from app.deps import Services, ServicesDep
from app.schemas import BecauseYouWatched, HomePage, UserRecommendations
from app.services.home import home_page
from app.services.recommender import Ranking

router = APIRouter(route_class=JSONRoute, tags=["users"])
UserPath = Annotated[int, Path(ge=0, le=2**63 - 1, description="The client's own user id.", examples=[1])]


def _kept(
    services: Services, ranking: Ranking | None, *request: Hashable
) -> tuple[MutableMapping[Hashable, bytes] | None, Hashable]:
    """Where a user's answer to `request` is kept, and its key: the services' kept answers,
    under the ranking's token (a write of the user's feedback makes a new ranking, so the old
    answers are never read again); nowhere for a user without a ranking (the fallback)."""
    if ranking is None:
        return None, request
    return services.rendered, (ranking.token, *request)


@router.get(
    "/users/{user_id}/recommendations",
    response_model=UserRecommendations,
    summary="Top picks for a user",
    description="Never a movie the user rated. "
    "An unknown user gets the trending chart, marked as a fallback.",
)
async def recommendations(
    user_id: UserPath, services: ServicesDep, filters: FiltersDep, k: KQuery = 10
) -> Response:
    # The user's ranking is cached, or read from the bundle's table or computed, once per user
    # however many requests for them arrive together (see Rankings); the top-k is read off it
    # on the event loop, and the answer kept under its token for the same request again.
    ranking = await services.rankings.of(user_id)
    answers, key = _kept(services, ranking, "recommendations", k, filters)
    if (answer := rendered(answers, key)) is not None:
        return answer
    check_genre(services.catalog, filters.genre)
    result = services.recommender.from_ranking(user_id, ranking, k, filters)
    if result is None:  # the filters reach deeper than the ranking: score the catalog
        compute = partial(services.recommender.answer, user_id, ranking, k, filters)
        return keep(await run_in_threadpool(encoded, compute), answers, key)
    return render(result, answers, key)


@router.get(
    "/users/{user_id}/because-you-watched",
    response_model=BecauseYouWatched,
    summary="Rows of movies like ones the user rated highly",
    description="One row per movie among the user's highest rated (and those they played or finished), "
    "highest first: the movies most similar to it that the user has not seen, no movie in two rows. "
    "Ratings stored through the API count at once.",
)
async def because_you_watched(
    user_id: UserPath,
    services: ServicesDep,
    rows: Annotated[int, Query(ge=1, le=20, description="How many rows (1-20).")] = 3,
    k: KQuery = 10,
) -> Response:
    ranking = await services.rankings.of(user_id)
    answers, key = _kept(services, ranking, "because-you-watched", rows, k)
    if (answer := rendered(answers, key)) is not None:
        return answer
    if ranking is None:
        return render({"user_id": user_id, "rows": []}, answers, key)
    history = ranking.history

    def compute() -> dict[str, Any]:
        return {"user_id": user_id, "rows": services.recommender.because_you_watched(history, rows, k)}

    return keep(await run_in_threadpool(encoded, compute), answers, key)


@router.get(
    "/users/{user_id}/home",
    response_model=HomePage,
    summary="The home page for a user: rows to render",
    description="Rows, their titles and order come from the operator's HOME_CONFIG file; "
    "no movie appears twice and rows with nothing to show are left out.",
)
async def home(user_id: UserPath, services: ServicesDep) -> Response:
    ranking = await services.rankings.of(user_id)
    answers, key = _kept(services, ranking, "home")
    if (answer := rendered(answers, key)) is not None:
        return answer

    def compute() -> dict[str, Any]:
        return {"user_id": user_id, "rows": home_page(services.recommender, services.home, user_id, ranking)}

    return keep(await run_in_threadpool(encoded, compute), answers, key)
