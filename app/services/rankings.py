"""Users' rankings for the async routes: cached, or computed once however many ask at once."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from app.services.concurrency import SingleFlight
from app.services.feedback import FeedbackService
from app.services.recommender import Ranking, Recommender


class Rankings:
    """A user's ranking: the recommender's cached one, else made from their stored feedback
    (read from the bundle's table on the event loop when that is a lookup, computed in the
    thread pool otherwise), once per user however many requests arrive together (the first
    request of a wrk run brings 64 for the same user)."""

    def __init__(self, recommender: Recommender, feedback: FeedbackService):
        self.recommender = recommender
        self.feedback = feedback
        self._flights: SingleFlight[Ranking | None] = SingleFlight()

    async def of(self, user_id: int) -> Ranking | None:
        """None for a user with no history at all (they get the fallback)."""
        ranking = self.recommender.cached_ranking(user_id)
        if ranking is None:
            ranking = await self._flights.run(user_id, lambda: self._compute(user_id))
        return ranking

    async def _compute(self, user_id: int) -> Ranking | None:
        since = self.recommender.generation
        stored = await self.feedback.stored(user_id)
        if self.recommender.ranking_is_cheap(user_id, stored):  # read from the bundle's table
            return self.recommender.ranking_for(user_id, stored, since)
        return await run_in_threadpool(self.recommender.ranking_for, user_id, stored, since)
