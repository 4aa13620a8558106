"""Every endpoint's happy path and error paths, over ASGI with the lifespan run."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import orjson
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends, FastAPI, Request, Response, routing
from pydantic import BaseModel

from app.api import common, movies, recommendations, users
from app.api.common import JSONRoute, _direct_call, _direct_get, keep
from app.main import StartupError, create_app
from app.schemas import (
    BecauseYouWatched,
    HomePage,
    MovieList,
    PredictionRequest,
    PredictionResponse,
    SimilarMovies,
    UserRecommendations,
    VisitorRecommendations,
)
from app.services.catalog import Catalog, Filters
from app.services.recommender import Recommender
from app.settings import Settings
from tests.conftest import synthetic_ratings
from training.bundle import read_bundle

RATINGS = synthetic_ratings()


def seen_by(user_id: int) -> set[int]:
    return set(RATINGS.loc[RATINGS["userId"] == user_id, "movieId"])


class TestHealth:
    async def test_reports_the_model(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/health")).json()
        assert body["status"] == "ok"
        assert body["model"]["dataset"] == "ml-mini"
        assert body["model"]["counts"]["users"] == 60


class TestMovies:
    async def test_one_movie(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/movies/2")).json()
        assert body == {
            "movie_id": 2, "title": "Movie 2, The", "year": 1982, "genres": ["Drama", "Romance"],
            "imdb_id": 100002, "tmdb_id": 502,
        }  # fmt: skip

    async def test_unknown_movie_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/movies/4040")
        assert response.status_code == 404
        assert response.json() == {"error": "unknown_movie", "detail": "movie 4040 is not in the catalog"}

    @pytest.mark.parametrize("path", ["/movies/abc", "/movies/-1", "/movies/99999999999999999999999"])
    async def test_bad_movie_id_is_422(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "movie_id"]

    async def test_search_ranks_prefix_first_and_pages(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/movies", params={"query": "MOVIE 1", "limit": 3})).json()
        assert body["total"] == 11  # Movie 1, Movie 10..19
        assert body["items"][0]["title"] == "Movie 1, The"
        page2 = (await client.get("/movies", params={"query": "movie 1", "limit": 3, "offset": 3})).json()
        assert {m["movie_id"] for m in page2["items"]}.isdisjoint({m["movie_id"] for m in body["items"]})

    async def test_search_reads_titles_with_their_article_in_front(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/movies", params={"query": "the movie 1", "limit": 3})).json()
        assert body["total"] == 11  # "Movie 1, The" itself, then Movie 10..19
        assert body["items"][0]["title"] == "Movie 1, The"

    async def test_search_filters(self, client: httpx.AsyncClient) -> None:
        body = (
            await client.get("/movies", params={"genre": "drama", "year_from": 2000, "limit": 100})
        ).json()
        assert body["items"]
        assert all("Drama" in m["genres"] and m["year"] >= 2000 for m in body["items"])

    async def test_an_empty_search_lists_the_catalog_by_popularity(self, client: httpx.AsyncClient) -> None:
        """Browsing: every movie the filters keep, most rated first, ties in id order, paged."""
        counts = RATINGS.groupby("movieId").size()
        released_since_2000 = range(20, 41)  # the fixture's movie i came out in 1980 + i
        expected = sorted(released_since_2000, key=lambda movie: (-counts.get(movie, 0), movie))
        assert len(set(counts[list(released_since_2000)])) > 1  # not vacuous: counts differ
        pages = [
            (await client.get("/movies", params={"year_from": 2000, "limit": 8, "offset": offset})).json()
            for offset in (0, 8, 16)
        ]
        assert [page["total"] for page in pages] == [21, 21, 21]
        assert [m["movie_id"] for page in pages for m in page["items"]] == expected

    async def test_genres(self, client: httpx.AsyncClient) -> None:
        items = (await client.get("/genres")).json()["items"]
        assert {g["name"] for g in items} == {"Action", "Comedy", "Drama", "Horror", "Romance"}
        assert all(g["movies"] > 0 for g in items)


class TestCharts:
    async def test_trending_with_filters(self, client: httpx.AsyncClient) -> None:
        items = (await client.get("/trending", params={"k": 5, "genre": "Comedy", "year_to": 2010})).json()[
            "items"
        ]
        assert len(items) == 5
        assert all("Comedy" in m["genres"] and m["year"] <= 2010 for m in items)
        scores = [m["score"] for m in items]
        assert scores == sorted(scores, reverse=True)

    async def test_top_rated_min_ratings(self, client: httpx.AsyncClient) -> None:
        items = (await client.get("/top-rated", params={"k": 100, "min_ratings": 25})).json()["items"]
        counts = RATINGS.groupby("movieId").size()
        assert items
        assert all(counts[m["movie_id"]] >= 25 for m in items)

    @pytest.mark.parametrize("k", [0, 101, "x"])
    async def test_bad_k(self, client: httpx.AsyncClient, k: int | str) -> None:
        response = await client.get("/trending", params={"k": k})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "k"]


@pytest.mark.parametrize(
    ("url", "unknown", "takes"),
    [
        ("/trending?limit=5", ["limit"], "k, genre, year_from, year_to"),
        ("/movies?q=toy&k=5&genre=Comedy", ["q", "k"], "query, genre, year_from, year_to, limit, offset"),
        ("/users/3/recommendations?k=5&exlcude=2", ["exlcude"], "k, genre, year_from, year_to, exclude"),
        ("/genres?sort=name", ["sort"], "no query parameters"),
    ],
)
async def test_a_query_parameter_the_route_does_not_take_is_422_naming_it(
    client: httpx.AsyncClient, url: str, unknown: list[str], takes: str
) -> None:
    """A misspelt or misplaced parameter is an error naming it and the ones the route takes,
    not ignored: `?limit=5` on a route that takes `k` would answer ten items."""
    response = await client.get(url)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(error["type"], error["loc"]) for error in errors] == [
        ("extra_forbidden", ["query", name]) for name in unknown
    ]
    assert all(error["msg"].endswith(f"this route takes {takes}") for error in errors)
    assert (await client.get(url.split("?")[0])).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/trending",
        "/top-rated",
        "/movies",
        "/movies/1/similar",
        "/users/3/recommendations",
        "/users/999999/recommendations",  # the fallback for an unknown user too
    ],
)
async def test_an_unknown_genre_is_422_naming_it(client: httpx.AsyncClient, url: str) -> None:
    """A typo in a genre is an error, not an empty list; a known one in any case is not."""
    response = await client.get(url, params={"genre": "Westren"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"], error["input"]) == (["query", "genre"], "unknown_genre", "Westren")
    assert "/genres" in error["msg"]
    assert (await client.get(url, params={"genre": "comedy"})).status_code == 200


class TestSimilar:
    async def test_similar_movies_share_taste_group(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/movies/2/similar", params={"k": 5})).json()
        assert body["movie"]["movie_id"] == 2
        ids = [m["movie_id"] for m in body["items"]]
        assert len(ids) == 5
        assert 2 not in ids
        assert sum(i % 2 == 0 for i in ids) >= 4

    async def test_filters_applied_before_cut(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/movies/2/similar", params={"k": 3, "exclude": [4, 6, 8]})).json()
        ids = [m["movie_id"] for m in body["items"]]
        assert len(ids) == 3
        assert not {4, 6, 8} & set(ids)

    async def test_unknown_movie(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/movies/777/similar")).status_code == 404


class TestUserRecommendations:
    async def test_never_recommends_seen_movies(self, client: httpx.AsyncClient) -> None:
        for user in (1, 2, 17):
            body = (await client.get(f"/users/{user}/recommendations", params={"k": 20})).json()
            ids = {m["movie_id"] for m in body["items"]}
            assert body["known_user"] is True
            assert ids
            assert not ids & seen_by(user)

    async def test_recommends_the_users_taste(self, client: httpx.AsyncClient) -> None:
        items = (await client.get("/users/2/recommendations", params={"k": 5})).json()["items"]
        assert sum(m["movie_id"] % 2 == 0 for m in items) >= 4
        assert all(m["because"]["movie_id"] in seen_by(2) for m in items)

    async def test_filters_give_k_items(self, client: httpx.AsyncClient) -> None:
        params: dict[str, int | str | list[int]] = {"k": 4, "genre": "Action", "exclude": [5]}
        items = (await client.get("/users/2/recommendations", params=params)).json()["items"]
        eligible = {m for m in range(1, 41) if m % 5 in (1, 4) and m % 7} - seen_by(2) - {5}
        assert len(items) == min(4, len(eligible))
        assert all("Action" in m["genres"] and m["movie_id"] != 5 for m in items)

    async def test_cached_answer_equals_computed_one(self, client: httpx.AsyncClient) -> None:
        first = (await client.get("/users/31/recommendations", params={"k": 8})).json()
        again = (await client.get("/users/31/recommendations", params={"k": 8})).json()
        assert first == again
        filtered = (await client.get("/users/31/recommendations", params={"k": 8, "genre": "Drama"})).json()
        expected = [m["movie_id"] for m in first["items"] if "Drama" in m["genres"]]
        got = [m["movie_id"] for m in filtered["items"]]
        assert got[: len(expected)] == expected  # filtering the cached ranking keeps its order

    async def test_ranking_for_someone_who_rated_here_is_folded_in(self, client: httpx.AsyncClient) -> None:
        """A stored rating makes the user's ranking computed (folded in), not read from the
        bundle's table: the movie rated here is never recommended."""
        before = (await client.get("/users/45/recommendations", params={"k": 3})).json()["items"]
        top = before[0]["movie_id"]
        rated = await client.post("/users/45/ratings", json={"ratings": [{"movie_id": top, "rating": 1}]})
        assert rated.status_code == 201
        after = (await client.get("/users/45/recommendations", params={"k": 3})).json()["items"]
        assert top not in [m["movie_id"] for m in after]

    async def test_unknown_user_gets_marked_fallback(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/users/4294967295/recommendations", params={"k": 3})).json()
        assert body["known_user"] is False
        assert body["fallback"] == "trending"
        assert len(body["items"]) == 3

    async def test_because_you_watched_rows(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/users/3/because-you-watched", params={"rows": 3, "k": 4})).json()
        rows = body["rows"]
        assert len(rows) == 3
        shown = [m["movie_id"] for row in rows for m in row["items"]]
        assert len(shown) == len(set(shown))  # no duplicates across rows
        assert not set(shown) & seen_by(3)
        assert all(row["because"]["movie_id"] in seen_by(3) for row in rows)

    async def test_because_you_watched_unknown_user_is_empty(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/users/5555/because-you-watched")).json()["rows"] == []


class TestVisitor:
    async def test_fold_in_follows_the_picks(self, client: httpx.AsyncClient) -> None:
        body = {"ratings": [{"movie_id": m, "rating": 5} for m in (2, 4, 6)], "liked": [8], "k": 6}
        items = (await client.post("/recommendations", json=body)).json()["items"]
        ids = [m["movie_id"] for m in items]
        assert len(ids) == 6
        assert not {2, 4, 6, 8} & set(ids)
        assert sum(i % 2 == 0 for i in ids) >= 5

    async def test_visitors_asking_at_once_each_get_their_own_answer(
        self, client: httpx.AsyncClient, recommender: Recommender
    ) -> None:
        # Visitors are answered in batches in the thread pool (Services.visitors): each must
        # get the answer computed for their own picks alone.
        movies = [card["movie_id"] for card in recommender.catalog.cards]
        bodies: list[dict[str, Any]] = [
            {
                "ratings": [
                    {"movie_id": movies[(7 * i + step) % len(movies)], "rating": rating}
                    for step, rating in ((0, 4.5), (3, 1.5), (11, 3.5))
                ],
                "k": 3 + i % 5,
            }
            for i in range(24)
        ]
        answers = await asyncio.gather(*(client.post("/recommendations", json=body) for body in bodies))
        everything = Filters(None, None, None, ())
        for body, answer in zip(bodies, answers, strict=True):
            positions = recommender.catalog.positions([r["movie_id"] for r in body["ratings"]])
            ratings = np.array([r["rating"] for r in body["ratings"]], dtype=np.float32)
            expected = recommender.for_visitor(positions, ratings, body["k"], everything)
            assert answer.status_code == 200
            assert answer.json()["items"] == expected

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "body"),
            ({"ratings": [], "liked": []}, "body"),
            ({"liked": [1], "k": 0}, "k"),
            ({"ratings": [{"movie_id": 1, "rating": 11}]}, "rating"),
            ({"liked": list(range(501))}, "liked"),
            ({"liked": [1], "surprise": True}, "surprise"),
        ],
    )
    async def test_bad_bodies_are_422(self, client: httpx.AsyncClient, body: dict, field: str) -> None:
        response = await client.post("/recommendations", json=body)
        assert response.status_code == 422
        assert field in str(response.json()["detail"])

    async def test_fuzz_findings_are_422(self, client: httpx.AsyncClient) -> None:
        huge = await client.get("/users/1/recommendations", params={"exclude": [10**30]})
        assert huge.status_code == 422
        assert (await client.get("/movies/1/similar", params={"exclude": [-(10**25)]})).status_code == 422
        not_an_id = await client.post("/recommendations", json={"liked": [False]})
        assert not_an_id.status_code == 422
        assert (
            await client.post("/predictions", json={"pairs": [{"user_id": 1, "movie_id": True}]})
        ).status_code == 422
        garbage = b"\xff\x00not json"
        assert (await client.post("/predictions", content=garbage)).status_code == 422  # no content type
        json_type = {"content-type": "application/json"}
        not_json = await client.post("/predictions", content=garbage, headers=json_type)
        assert not_json.status_code == 422
        assert not_json.json()["detail"][0]["type"] == "json_invalid"

    @pytest.mark.parametrize(
        "body",
        [
            b'{"pairs": [{"user_id": 1, "movie_id": 2}',
            b'{"pairs": NaN}',
            b'{"pairs": [{"user_id": 1e999}]}',
            b"",
        ],
    )
    async def test_malformed_json_is_422(self, client: httpx.AsyncClient, body: bytes) -> None:
        response = await client.post(
            "/predictions", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert "body" in str(response.json()["detail"])

    async def test_an_unknown_genre_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/recommendations", json={"liked": [1], "genre": "Westren"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "genre"]

    async def test_a_rating_off_the_scale_is_422_naming_the_movie(self, client: httpx.AsyncClient) -> None:
        body = {"ratings": [{"movie_id": 1, "rating": 4}, {"movie_id": 2, "rating": 0.2}]}
        response = await client.post("/recommendations", json=body)
        assert response.status_code == 422
        assert response.json()["error"] == "rating_off_scale"
        low, high = (await client.get("/health")).json()["model"]["rating_scale"]
        assert f"between {low:g} and {high:g} (movie 2: 0.2)" in response.json()["detail"]

    async def test_unknown_movie_in_body(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/recommendations", json={"liked": [1, 9999]})
        assert response.status_code == 422
        assert response.json()["error"] == "unknown_movies"
        assert "9999" in response.json()["detail"]


class TestPredictions:
    async def test_in_order_with_unknowns(self, client: httpx.AsyncClient) -> None:
        pairs = [
            {"user_id": 2, "movie_id": 4},
            {"user_id": 2, "movie_id": 3},
            {"user_id": 123456789, "movie_id": 4},
            {"user_id": 2, "movie_id": 9999},
        ]
        preds = (await client.post("/predictions", json={"pairs": pairs})).json()["predictions"]
        assert [(p["user_id"], p["movie_id"]) for p in preds] == [
            (p["user_id"], p["movie_id"]) for p in pairs
        ]
        assert preds[0]["rating"] > preds[1]["rating"]  # even user, even movie
        assert [p["known_user"] for p in preds] == [True, True, False, True]
        assert [p["known_movie"] for p in preds] == [True, True, True, False]
        assert all(1.0 <= p["rating"] <= 5.0 for p in preds)

    async def test_ten_thousand_pairs(self, client: httpx.AsyncClient) -> None:
        pairs = [{"user_id": i % 70, "movie_id": i % 45} for i in range(10_000)]
        response = await client.post("/predictions", json={"pairs": pairs})
        assert len(response.json()["predictions"]) == 10_000

    @pytest.mark.parametrize(
        "body",
        [
            {"pairs": []},
            {"pairs": [{"user_id": 1, "movie_id": 1}] * 10_001},
            {"pairs": [{"user_id": -1, "movie_id": 1}]},
        ],
    )
    async def test_bad_bodies(self, client: httpx.AsyncClient, body: dict) -> None:
        assert (await client.post("/predictions", json=body)).status_code == 422


# A body sent as exactly "application/json" takes JSONRoute's direct path on the body-only
# routes; the same bytes with a charset take FastAPI's own path.
DIRECT = {"content-type": "application/json"}
FASTAPI_PATH = {"content-type": "application/json; charset=utf-8"}


class _EchoBody(BaseModel):
    value: int


async def _source(request: Request) -> str:
    return "real"


async def _overridden(request: Request) -> str:
    return "override"


async def _echo(body: _EchoBody, name: Annotated[str, Depends(_source)]) -> Response:
    return Response(f"{name} {body.value}")


class TestDirectBodyPath:
    def test_only_routes_whose_inputs_are_a_body_and_the_services_have_it(self, artifacts: Path) -> None:
        app = create_app(Settings(artifacts_dir=artifacts))
        direct = {
            (route.path, method)
            for route in app.router.routes
            if isinstance(route, JSONRoute) and _direct_call(route) is not None
            for method in route.methods or ()
        }
        # Not the rating writes: they have a path parameter and the API-key dependency.
        assert direct == {("/recommendations", "POST"), ("/predictions", "POST")}

    @pytest.mark.parametrize(
        ("url", "body"),
        [
            ("/recommendations", b'{"ratings": [{"movie_id": 2, "rating": 4}], "liked": [6], "k": 4}'),
            ("/recommendations", b'{"liked": [3, 5], "k": 3, "genre": "comedy", "exclude": [7]}'),
            (
                "/predictions",
                b'{"pairs": [{"user_id": 2, "movie_id": 4}, {"user_id": 99999, "movie_id": 1}]}',
            ),
            # errors: raised by the endpoint on the direct path, by validation on FastAPI's
            ("/recommendations", b'{"liked": [999999]}'),
            ("/recommendations", b'{"ratings": [{"movie_id": 2, "rating": 9.5}]}'),
            ("/recommendations", b'{"liked": [2], "genre": "Westren"}'),
            ("/recommendations", b'{"liked": []}'),
            ("/recommendations", b'{"liked": [2], "k": 0, "extra": 1}'),
            ("/recommendations", b'{"ratings": [{"movie_id": 2, "rating": NaN}]}'),
            ("/predictions", b'{"pairs": [{"user_id": 1, "movie_id": true}]}'),
            ("/predictions", b'{"pairs": [{"user_id": 1, "movie_id": 2}'),
            ("/predictions", b"[]"),
            ("/predictions", b""),
        ],
    )
    async def test_answers_as_fastapis_own_path(
        self, client: httpx.AsyncClient, url: str, body: bytes
    ) -> None:
        theirs = await client.post(url, content=body, headers=FASTAPI_PATH)
        ours = await client.post(url, content=body, headers=DIRECT)
        assert theirs.status_code != 500
        assert (ours.status_code, ours.json(), ours.headers["content-type"]) == (
            theirs.status_code,
            theirs.json(),
            theirs.headers["content-type"],
        )

    async def test_a_valid_body_skips_fastapis_parsing(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Observed through the two parsers: pydantic from the bytes (direct) and orjson
        # (FastAPI's path through JSONRoute's request class).
        calls: list[str] = []
        validate = PredictionRequest.model_validate_json
        loads = orjson.loads

        def direct(data: bytes) -> PredictionRequest:
            calls.append("direct")
            return validate(data)

        def fastapis(data: bytes) -> Any:
            calls.append("orjson")
            return loads(data)

        monkeypatch.setattr(PredictionRequest, "model_validate_json", direct)
        monkeypatch.setattr(common.orjson, "loads", fastapis)
        body = b'{"pairs": [{"user_id": 2, "movie_id": 4}]}'
        assert (await client.post("/predictions", content=body, headers=DIRECT)).status_code == 200
        assert calls == ["direct"]
        calls.clear()
        assert (
            await client.post("/predictions", content=b'{"pairs": []}', headers=DIRECT)
        ).status_code == 422
        assert calls == ["direct", "orjson"]  # invalid: FastAPI's path answers, with its error
        calls.clear()
        assert (await client.post("/predictions", content=body, headers=FASTAPI_PATH)).status_code == 200
        assert calls == ["orjson"]

    async def test_dependency_overrides_are_honoured(self) -> None:
        # On a small app of its own: an override set on the app sends every body through
        # FastAPI's path, which applies it (the direct path would call the real dependency).
        router = APIRouter(route_class=JSONRoute)
        router.add_api_route("/echo", _echo, methods=["POST"])
        app = FastAPI()
        app.include_router(router)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            assert (await http.post("/echo", content=b'{"value": 1}', headers=DIRECT)).text == "real 1"
            app.dependency_overrides[_source] = _overridden
            assert (await http.post("/echo", content=b'{"value": 2}', headers=DIRECT)).text == "override 2"


# (url, whether its parameters are valid, so that JSONRoute's direct path answers it)
GET_URLS = [
    ("/trending?k=5", True),
    ("/trending?k=4&genre=comedy&year_from=1990&year_to=2005", True),
    ("/trending?k=3&k=4", True),  # the last value, as FastAPI reads a repeated parameter
    ("/top-rated?k=3&genre=Drama&min_ratings=2", True),
    ("/movies/2/similar?k=3&exclude=4&exclude=6", True),
    ("/users/2/recommendations?k=4&genre=Drama&year_to=2005&exclude=1", True),
    ("/users/999999/recommendations?k=3", True),  # the popular fallback
    ("/users/2/because-you-watched?rows=2&k=3", True),
    ("/users/2/home", True),
    # errors: raised by the endpoint on the direct path, by validation on FastAPI's
    ("/trending?genre=Westren", True),
    ("/movies/999999/similar", True),
    ("/users/2/recommendations?exclude=&k=2", False),
    ("/trending?k=0", False),
    ("/trending?k=abc", False),
    ("/trending?year_from=", False),
    ("/top-rated?min_ratings=-1", False),
    ("/movies/abc/similar", False),
    ("/movies/2/similar?exclude=x", False),
    ("/users/-1/recommendations", False),
    ("/users/2/because-you-watched?rows=0", False),
    ("/users/abc/home", False),
]


async def _no_override() -> None:
    """Set as a dependency override: the app then answers every request by FastAPI's path."""


class TestDirectGetPath:
    def test_only_get_routes_with_path_and_query_inputs_have_it(self, artifacts: Path) -> None:
        app = create_app(Settings(artifacts_dir=artifacts))
        direct = {
            route.path
            for route in app.router.routes
            if isinstance(route, JSONRoute) and _direct_get(route) is not None
        }
        # Not the routes that return plain values for FastAPI to validate (/health, /movies...).
        assert direct == {
            "/trending",
            "/top-rated",
            "/movies/{movie_id}/similar",
            "/users/{user_id}/recommendations",
            "/users/{user_id}/because-you-watched",
            "/users/{user_id}/home",
        }

    async def test_answers_as_fastapis_own_path(
        self, client: httpx.AsyncClient, artifacts: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        solved: list[str] = []
        solve = routing.solve_dependencies

        async def counted(*args: Any, **kwargs: Any) -> Any:
            solved.append(kwargs["request"].url.path)
            return await solve(*args, **kwargs)

        monkeypatch.setattr(routing, "solve_dependencies", counted)
        theirs_app = create_app(Settings(artifacts_dir=artifacts))
        theirs_app.dependency_overrides[_no_override] = _no_override
        async with (
            LifespanManager(theirs_app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
            ) as fastapis,
        ):
            for url, valid in GET_URLS:
                solved.clear()
                ours = await client.get(url)
                assert (not solved) == valid, url  # FastAPI solved nothing: the direct path answered
                theirs = await fastapis.get(url)
                assert solved, url  # the other app took FastAPI's path
                assert theirs.status_code != 500
                assert (ours.status_code, ours.json(), ours.headers["content-type"]) == (
                    theirs.status_code,
                    theirs.json(),
                    theirs.headers["content-type"],
                ), url


class TestDocs:
    async def test_docs_served_offline(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "cdn" not in page.text.lower()
        asset = page.text.split('src="')[1].split('"')[0]
        assert asset.startswith("/")
        assert (await client.get(asset)).status_code == 200

    async def test_openapi_describes_every_route(self, client: httpx.AsyncClient) -> None:
        schema = (await client.get("/openapi.json")).json()
        for path in [
            "/health",
            "/movies/{movie_id}/similar",
            "/users/{user_id}/recommendations",
            "/predictions",
        ]:
            assert path in schema["paths"]
        for path, ops in schema["paths"].items():
            for method, op in ops.items():
                assert op.get("summary"), path
                assert op.get("description"), (method, path)
                # Every status documented is one the route can answer: a body that is not
                # JSON is a 422, never a 400; one over MAX_BODY_BYTES is a 413.
                assert "400" not in op["responses"], (method, path)
                assert ("413" in op["responses"]) == ("requestBody" in op), (method, path)
                for status, response in op["responses"].items():
                    if int(status) >= 400:  # every error: a description and at least one example
                        assert response.get("description"), (method, path, status)
                        media = response["content"].values()
                        assert media
                        assert all(m.get("examples") or "example" in m for m in media)


def _has_example(schema: dict[str, Any]) -> bool:
    if "examples" in schema or "example" in schema or "default" in schema or "$ref" in schema:
        return True
    if schema.get("type") == "array" and "$ref" in schema.get("items", {}):
        return True  # a list of models: the model's fields carry the examples
    return any("$ref" in option for option in schema.get("anyOf", []))


async def test_every_parameter_and_field_has_an_example(client: httpx.AsyncClient) -> None:
    """What the docs page shows as example values is realistic, not "string" and 0."""
    schema = (await client.get("/openapi.json")).json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for parameter in op.get("parameters", []):
                assert parameter.get("description"), (method, path, parameter["name"])
                assert _has_example(parameter["schema"]), (method, path, parameter["name"])
    ours = {
        name: model for name, model in schema["components"]["schemas"].items() if "Validation" not in name
    }
    for name, model in ours.items():
        for field, field_schema in model.get("properties", {}).items():
            assert _has_example(field_schema), (name, field)


# Each documented error example next to the request that produces it: the example must be
# exactly what the server answers (the ids and the scale are those of the fixture's catalog).
DOCUMENTED_ERRORS: list[tuple[str, str, str, Any, str, str]] = [
    ("GET", "/movies/{movie_id}", "/movies/999999", None, "404", "unknown_movie"),
    ("GET", "/movies/{movie_id}/similar", "/movies/999999/similar", None, "404", "unknown_movie"),
    ("GET", "/trending", "/trending?k=abc", None, "422", "int_parsing"),
    ("GET", "/trending", "/trending?genre=Comdy", None, "422", "unknown_genre"),
    ("GET", "/trending", "/trending?q=toy+story", None, "422", "extra_forbidden"),
    ("GET", "/movies", "/movies?q=toy+story", None, "422", "extra_forbidden"),
    ("GET", "/health", "/health?q=toy+story", None, "422", "extra_forbidden"),
    ("POST", "/predictions", "/predictions?q=toy+story", {"pairs": []}, "422", "extra_forbidden"),
    ("GET", "/users/{user_id}/recommendations", "/users/abc/recommendations", None, "422", "int_parsing"),
    ("POST", "/recommendations", "/recommendations", {"liked": [999999]}, "422", "unknown_movies"),
    (
        "POST",
        "/recommendations",
        "/recommendations",
        {"ratings": [{"movie_id": 1, "rating": 9}]},
        "422",
        "rating_off_scale",
    ),
    ("POST", "/recommendations", "/recommendations", b"nope", "422", "json_invalid"),
    ("POST", "/predictions", "/predictions", b"nope", "422", "json_invalid"),
    (
        "POST",
        "/users/{user_id}/ratings",
        "/users/42/ratings",
        {"ratings": [{"movie_id": 999999, "rating": 4}]},
        "404",
        "unknown_movies",
    ),
    (
        "POST",
        "/users/{user_id}/ratings",
        "/users/42/ratings",
        {"ratings": [{"movie_id": 1, "rating": 9}]},
        "422",
        "rating_off_scale",
    ),
    ("DELETE", "/users/{user_id}/ratings/{movie_id}", "/users/42/ratings/1", None, "404", "not_rated"),
]


@pytest.mark.parametrize(("method", "path", "url", "body", "status", "name"), DOCUMENTED_ERRORS)
async def test_documented_error_examples_are_the_real_answers(
    client: httpx.AsyncClient, method: str, path: str, url: str, body: Any, status: str, name: str
) -> None:
    schema = (await client.get("/openapi.json")).json()
    documented = schema["paths"][path][method.lower()]["responses"][status]["content"]["application/json"]
    sent: dict[str, Any]
    if isinstance(body, bytes):
        sent = {"content": body, "headers": {"content-type": "application/json"}}
    else:
        sent = {} if body is None else {"json": body}
    answer = await client.request(method, url, **sent)
    assert answer.status_code == int(status)
    expected = documented["examples"][name]["value"]
    if name == "rating_off_scale":  # the example names MovieLens's scale; the fixture's is its own
        low, high = (await client.get("/health")).json()["model"]["rating_scale"]
        expected = {**expected, "detail": expected["detail"].replace("0.5 and 5", f"{low:g} and {high:g}")}
    assert answer.json() == expected


@pytest.mark.parametrize(
    ("method", "url", "body", "model"),
    [
        ("GET", "/trending?k=5&genre=Drama", None, MovieList),
        ("GET", "/top-rated?k=5", None, MovieList),
        ("GET", "/movies/2/similar?k=5", None, SimilarMovies),
        ("GET", "/users/3/recommendations?k=5", None, UserRecommendations),
        ("GET", "/users/3/recommendations?k=5&genre=Horror&year_from=2000", None, UserRecommendations),
        ("GET", "/users/4040/recommendations?k=5", None, UserRecommendations),  # the fallback
        ("GET", "/users/3/because-you-watched?rows=2&k=3", None, BecauseYouWatched),
        ("GET", "/users/3/home", None, HomePage),
        (
            "POST",
            "/recommendations",
            {"ratings": [{"movie_id": 2, "rating": 4.5}], "liked": [5], "k": 5},
            VisitorRecommendations,
        ),
        (
            "POST",
            "/predictions",
            {"pairs": [{"user_id": 3, "movie_id": 2}, {"user_id": 4040, "movie_id": 9}]},
            PredictionResponse,
        ),
    ],
)
async def test_answers_have_exactly_their_response_models_shape(
    client: httpx.AsyncClient, method: str, url: str, body: dict | None, model: type[BaseModel]
) -> None:
    """Answers are encoded from plain values (`render`), not through the response model that
    the schema documents: each must validate against it strictly and lose nothing in doing so
    (no extra field, no field of another type)."""
    response = await client.request(method, url, json=body)
    assert response.status_code == 200
    answer = response.json()
    assert any(isinstance(value, list) and value for value in answer.values())  # not vacuous
    validated = model.model_validate_json(response.content, strict=True)
    assert validated.model_dump(mode="json") == answer


async def test_missing_bundle_stops_startup(tmp_path: Path) -> None:
    app = create_app(Settings(artifacts_dir=tmp_path))
    with pytest.raises(StartupError, match=r"cannot start: no bundle at .*manifest\.json is missing"):
        async with LifespanManager(app):
            pass


class TestHome:
    async def test_rows_from_config_without_repeats(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/users/2/home")).json()
        kinds = [row["kind"] for row in body["rows"]]
        assert kinds[:4] == ["for_you", "because_you_watched", "because_you_watched", "trending"]
        # the default top_rated row asks for 20 ratings; the few fixture movies with that many
        # may all be on the page already, and then the empty row is left out
        assert kinds[4:] in ([], ["top_rated"])
        # the fixture's titles are "Movie N, The": named as a sentence would name them
        assert body["rows"][1]["title"].startswith("Because you watched The Movie ")
        shown = [m["movie_id"] for row in body["rows"] for m in row["items"]]
        assert len(shown) == len(set(shown))
        personal = [m["movie_id"] for row in body["rows"][:3] for m in row["items"]]
        assert not set(personal) & seen_by(2)

    async def test_unknown_user_gets_the_charts(self, client: httpx.AsyncClient) -> None:
        body = (await client.get("/users/909090/home")).json()
        assert [row["kind"] for row in body["rows"]] == ["trending", "top_rated"]
        counts = RATINGS.groupby("movieId").size()
        assert all(counts[m["movie_id"]] >= 20 for m in body["rows"][1]["items"])


async def test_operator_config_changes_the_page(artifacts: Path, tmp_path: Path) -> None:
    config = tmp_path / "home.json"
    config.write_text('{"rows": [{"kind": "most_rated", "title": "Popular", "k": 3}]}')
    app = create_app(Settings(artifacts_dir=artifacts, home_config=config))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        body = (await http.get("/users/1/home")).json()
    assert body["rows"] == [{"title": "Popular", "kind": "most_rated", "items": body["rows"][0]["items"]}]
    assert len(body["rows"][0]["items"]) == 3


async def test_bad_home_config_stops_startup(artifacts: Path, tmp_path: Path) -> None:
    config = tmp_path / "home.json"
    config.write_text('{"rows": [{"kind": "nonsense", "title": "x"}]}')
    app = create_app(Settings(artifacts_dir=artifacts, home_config=config))
    with pytest.raises(StartupError, match="cannot start"):
        async with LifespanManager(app):
            pass


@pytest.mark.parametrize("page", ["recommendations", "home"])
async def test_concurrent_first_requests_compute_a_users_ranking_once(
    artifacts: Path, tmp_path: Path, page: str
) -> None:
    app = create_app(
        Settings(
            artifacts_dir=artifacts,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/fb.db",
            migrate_on_start=True,
        )
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        recommender = app.state.services.recommender
        computed = []
        original = recommender._stored_ranking  # user 3 is in the bundle, with no feedback here

        def slow_ranking(*args: Any, **kwargs: Any) -> Any:
            computed.append(1)
            time.sleep(0.05)  # long enough for every request below to arrive while it runs
            return original(*args, **kwargs)

        recommender._stored_ranking = slow_ranking
        answers = await asyncio.gather(*(http.get(f"/users/3/{page}") for _ in range(12)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len(computed) == 1


VISITOR = {"liked": [1, 2], "ratings": [{"movie_id": 5, "rating": 4}], "k": 3}


@pytest.mark.parametrize(
    ("url", "other"),
    [
        ("/users/3/recommendations?k=4&genre=Comedy", "/users/3/recommendations?k=5&genre=Comedy"),
        ("/users/3/because-you-watched?rows=2&k=3", "/users/3/because-you-watched?rows=2&k=4"),
        ("/users/3/home", "/users/4/home"),
        ("/movies/1/similar?k=3", "/movies/2/similar?k=3"),
        ("/trending?k=3&genre=Comedy", "/trending?k=3&genre=Drama"),
        ("/top-rated?k=3", "/top-rated?k=3&min_ratings=2"),
        (VISITOR, {**VISITOR, "ratings": [{"movie_id": 5, "rating": 1}]}),
    ],
)
async def test_a_repeated_request_is_answered_from_the_kept_answer(
    artifacts: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str | dict[str, Any],
    other: str | dict[str, Any],
) -> None:
    """A GET by its URL, a visitor's POST /recommendations by its body."""
    renders = []  # the keys of the answers kept: each was computed and encoded

    def counted(*args: Any) -> Any:
        renders.append(args[-1])
        return keep(*args)

    for module in (common, users, movies, recommendations):  # `render` keeps through common's
        if hasattr(module, "keep"):
            monkeypatch.setattr(module, "keep", counted)
    app = create_app(Settings(artifacts_dir=artifacts))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):

        async def ask(request: str | dict[str, Any]) -> httpx.Response:
            if isinstance(request, str):
                return await http.get(request)
            return await http.post("/recommendations", json=request)

        first = await ask(url)
        again = await ask(url)
        assert len(renders) == 1  # the second answer was the kept one
        assert (again.status_code, again.text, again.headers["content-type"]) == (
            200,
            first.text,
            "application/json",
        )
        assert (await ask(other)).status_code == 200
        assert len(renders) == 2  # other parameters, another user or body: an answer of its own


async def test_kept_answers_stay_within_their_byte_budget(artifacts: Path) -> None:
    """RENDERED_CACHE_MB bounds the kept answers in bytes (least recently used dropped first);
    an answer larger than the whole budget is answered and not kept."""
    budget = 0.01  # MB: about 10 KB, a few chart answers
    app = create_app(Settings(artifacts_dir=artifacts, rendered_cache_mb=budget))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        kept = app.state.services.rendered
        sizes = []
        for k in range(1, 31):
            answer = await http.get(f"/trending?k={k}")
            assert answer.status_code == 200
            sizes.append(len(answer.content))
        assert sum(sizes) > budget * 2**20  # more than fits
        assert 0 < kept.currsize <= budget * 2**20
        assert ("trending", 30, Filters()) in kept  # the latest kept, the first dropped
        assert ("trending", 1, Filters()) not in kept

    tiny = create_app(Settings(artifacts_dir=artifacts, rendered_cache_mb=0.0005))  # ~500 bytes
    async with (
        LifespanManager(tiny) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        answer = await http.get("/trending?k=20")
        assert answer.status_code == 200
        assert len(answer.content) > 512
        assert len(tiny.state.services.rendered) == 0


def test_stored_rankings_equal_computed_ones(recommender: Recommender) -> None:
    """A bundle user's ranking read from the build's table is the one scoring computes."""
    bundle = recommender.bundle
    assert bundle.user_top_positions.shape[1] > 0
    for row, user_id in enumerate(bundle.user_ids[:40]):
        history = recommender.user_history(int(user_id))
        stored = recommender._stored_ranking(row, history)
        computed = recommender._ranking(recommender.ranker.als.user_factors[row], history)
        n = len(stored.positions)
        assert n > 0
        np.testing.assert_allclose(stored.scores, computed.scores[:n], rtol=1e-4, atol=1e-5)
        # The same movies in the same order; where they differ, only because two scores tie.
        differ = stored.positions != computed.positions[:n]
        np.testing.assert_allclose(stored.scores[differ], computed.scores[:n][differ], atol=1e-5)


@pytest.mark.parametrize("table_depth", [0, 3])
def test_filters_deeper_than_the_ranking_score_the_catalog(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch, table_depth: int
) -> None:
    """When the filters leave fewer than k movies in a user's ranking (the build's table, or a
    computed one: both cut short here), the answer is scored in full and still has k items."""
    monkeypatch.setattr("app.services.recommender.RANKING_DEPTH", 3)
    bundle = read_bundle(artifacts)
    bundle = dataclasses.replace(
        bundle,
        user_top_positions=bundle.user_top_positions[:, :table_depth],
        user_top_scores=bundle.user_top_scores[:, :table_depth],
    )
    recommender = Recommender(bundle, Catalog(bundle))
    result = recommender.answer(44, recommender.ranking_for(44), 6, Filters(genre="Action"))
    items = result["items"]
    assert len(items) == 6
    assert all("Action" in m["genres"] for m in items)
    assert not {m["movie_id"] for m in items} & seen_by(44)


def test_because_is_the_liked_movie_most_like_the_pick(recommender: Recommender) -> None:
    bundle = recommender.bundle
    factors = bundle.ranker.als.item_factors
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    for user_id in (2, 17, 44):
        history = recommender.user_history(user_id)
        liked = history.positions[history.ratings >= np.median(history.ratings)]
        for item in recommender.answer(user_id, recommender.ranking_for(user_id), 8, Filters())["items"]:
            pick = recommender.catalog.index.position(item["movie_id"])
            expected = liked[np.argmax(unit[liked] @ unit[pick])]
            assert item["because"]["movie_id"] == bundle.movies["movie_id"].iloc[expected]


def test_a_catalog_without_its_title_index_browses_but_refuses_to_search(artifacts: Path) -> None:
    """The visitor process leaves the title index out; such a catalog still lists by
    popularity, and a title search on it is a plain error, not an empty answer."""
    bundle = read_bundle(artifacts)
    whole, lean = Catalog(bundle), Catalog(bundle, searchable=False)
    everything = Filters(None, None, None, ())
    assert lean.search("", everything, 10, 5) == whole.search("", everything, 10, 5)
    assert whole.search("movie 1", everything, 10, 0)[0] == 11
    with pytest.raises(RuntimeError, match="without its title index"):
        lean.search("movie 1", everything, 10, 0)


def test_a_search_is_ranked_once_and_then_filtered_and_paged_from_what_is_kept(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query's ranking is kept before the filters and the paging (each request applies its
    own), within a budget in bytes: the least recently asked query goes first."""
    bundle = read_bundle(artifacts)
    fresh = Catalog(bundle)
    kept_size = {q: fresh.search(q, Filters(), 1, 0)[0] * 8 + 100 for q in ("movie", "movie 1")}
    assert kept_size == {"movie": 40 * 8 + 100, "movie 1": 11 * 8 + 100}  # int64 positions
    monkeypatch.setattr("app.services.catalog.SEARCH_CACHE_BYTES", sum(kept_size.values()) + 1)
    catalog = Catalog(bundle)
    matched: list[str] = []
    original = catalog._titles.matches  # type: ignore[union-attr]

    def counting(query: str) -> list[tuple[int, int]]:
        matched.append(query)
        return original(query)

    monkeypatch.setattr(catalog._titles, "matches", counting)
    everything, drama = Filters(), Filters(genre="Drama", year_from=1995)
    assert catalog.search("movie", everything, 5, 3) == fresh.search("movie", everything, 5, 3)
    assert catalog.search("movie", drama, 5, 0) == fresh.search("movie", drama, 5, 0)
    assert catalog.search(" movie ", drama, 50, 0) == fresh.search("movie", drama, 50, 0)
    assert matched == ["movie"]
    for query in ("movie 1", "movie 2", "movie"):  # two queries fill the budget
        catalog.search(query, everything, 5, 0)
    assert matched == ["movie", "movie 1", "movie 2", "movie"]
