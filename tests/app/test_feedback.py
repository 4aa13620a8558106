"""Live feedback on SQLite and on the real PostgreSQL server: stored, validated, all or nothing,
reflected in the next recommendations at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate
from app.main import StartupError, create_app
from app.services.recommender import Recommender
from app.settings import Settings
from tests.app.conftest import POSTGRES_ADMIN_URL, postgres_database, serving
from tests.app.test_api import seen_by

NEW_USER = 4_000_000_000  # beyond 32 bits, unknown to the bundle


async def _ids(client: httpx.AsyncClient, user: int, **params: int) -> list[int]:
    body = (await client.get(f"/users/{user}/recommendations", params={"k": 10, **params})).json()
    return [m["movie_id"] for m in body["items"]]


class TestRatings:
    async def test_store_replace_and_list_newest_first(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7_000_001
        first = await feedback_client.post(
            f"/users/{user}/ratings",
            json={"ratings": [
                {"movie_id": 1, "rating": 4, "rated_at": "2024-01-01T00:00:00Z"},
                {"movie_id": 3, "rating": 2.5, "rated_at": "2024-02-01T00:00:00Z"},
            ]},
        )  # fmt: skip
        assert first.status_code == 201
        assert [r["movie_id"] for r in first.json()["items"]] == [1, 3]
        again = await feedback_client.post(
            f"/users/{user}/ratings",
            json={"ratings": [{"movie_id": 1, "rating": 5, "rated_at": "2024-03-01T00:00:00Z"}]},
        )
        assert again.status_code == 201
        page = (await feedback_client.get(f"/users/{user}/ratings")).json()
        assert page["total"] == 2
        assert [(r["movie_id"], r["rating"]) for r in page["items"]] == [(1, 5.0), (3, 2.5)]
        assert page["items"][0]["rated_at"] in ("2024-03-01T00:00:00Z", "2024-03-01T00:00:00+00:00")
        paged = (await feedback_client.get(f"/users/{user}/ratings", params={"limit": 1, "offset": 1})).json()
        assert [r["movie_id"] for r in paged["items"]] == [3]

    async def test_unknown_movie_stores_nothing(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7_000_002
        response = await feedback_client.post(
            f"/users/{user}/ratings",
            json={"ratings": [{"movie_id": 1, "rating": 4}, {"movie_id": 999, "rating": 4}]},
        )
        assert response.status_code == 404
        assert response.json()["error"] == "unknown_movies"
        assert "999" in response.json()["detail"]
        assert (await feedback_client.get(f"/users/{user}/ratings")).json()["total"] == 0

    async def test_off_scale_rating_stores_nothing(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7_000_003
        response = await feedback_client.post(
            f"/users/{user}/ratings",
            json={"ratings": [{"movie_id": 1, "rating": 4}, {"movie_id": 2, "rating": 9}]},
        )
        assert response.status_code == 422
        assert response.json()["error"] == "rating_off_scale"
        assert "movie 2: 9" in response.json()["detail"]
        assert (await feedback_client.get(f"/users/{user}/ratings")).json()["total"] == 0

    @pytest.mark.parametrize(("user", "status"), [(2**32, 201), (2**63 - 1, 201), (2**63, 422), (-1, 422)])
    async def test_user_id_range(self, feedback_client: httpx.AsyncClient, user: int, status: int) -> None:
        response = await feedback_client.post(
            f"/users/{user}/ratings", json={"ratings": [{"movie_id": 5, "rating": 3}]}
        )
        assert response.status_code == status

    @pytest.mark.parametrize(
        "body",
        [{"ratings": []}, {"ratings": [{"movie_id": 1}]}, {"ratings": [{"movie_id": 1, "rating": 3}] * 501}],
    )
    async def test_bad_bodies(self, feedback_client: httpx.AsyncClient, body: dict) -> None:
        assert (await feedback_client.post("/users/1/ratings", json=body)).status_code == 422

    async def test_times_must_be_iso_strings(self, feedback_client: httpx.AsyncClient) -> None:
        body = {"ratings": [{"movie_id": 1, "rating": 4, "rated_at": 0}]}
        response = await feedback_client.post("/users/1/ratings", json=body)
        assert response.status_code == 422
        assert "ISO 8601" in str(response.json()["detail"])

    async def test_delete(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7_000_004
        await feedback_client.post(f"/users/{user}/ratings", json={"ratings": [{"movie_id": 6, "rating": 3}]})
        assert (await feedback_client.delete(f"/users/{user}/ratings/6")).status_code == 204
        gone = await feedback_client.delete(f"/users/{user}/ratings/6")
        assert gone.status_code == 404
        assert gone.json()["error"] == "not_rated"


class TestReflectedAtOnce:
    async def test_known_user_recommendations_change(self, feedback_client: httpx.AsyncClient) -> None:
        user = 4
        before = await _ids(feedback_client, user)
        rated = before[:3]
        # Asked before the write too, so that their answers are kept with the user's ranking.
        await feedback_client.get(f"/users/{user}/because-you-watched", params={"rows": 5})
        await feedback_client.get(f"/users/{user}/home")
        response = await feedback_client.post(
            f"/users/{user}/ratings", json={"ratings": [{"movie_id": m, "rating": 5} for m in rated]}
        )
        assert response.status_code == 201
        after = await _ids(feedback_client, user)
        assert not set(rated) & set(after)  # rated movies are never recommended back
        assert not set(after) & seen_by(user)
        rows = (await feedback_client.get(f"/users/{user}/because-you-watched", params={"rows": 5})).json()[
            "rows"
        ]
        shown = {m["movie_id"] for row in rows for m in row["items"]}
        assert not shown & (set(rated) | seen_by(user))
        page = (await feedback_client.get(f"/users/{user}/home")).json()
        picks = next(row for row in page["rows"] if row["kind"] == "for_you")
        assert not {m["movie_id"] for m in picks["items"]} & set(rated)

    async def test_new_user_is_folded_in(self, feedback_client: httpx.AsyncClient) -> None:
        before = (await feedback_client.get(f"/users/{NEW_USER}/recommendations")).json()
        assert before["known_user"] is False
        liked = [2, 4, 6, 8, 10]
        await feedback_client.post(
            f"/users/{NEW_USER}/ratings", json={"ratings": [{"movie_id": m, "rating": 5} for m in liked]}
        )
        after = (await feedback_client.get(f"/users/{NEW_USER}/recommendations")).json()
        assert after["known_user"] is True
        ids = [m["movie_id"] for m in after["items"]]
        assert not set(ids) & set(liked)
        assert sum(i % 2 == 0 for i in ids) >= 8  # the even taste group

    async def test_delete_is_reflected(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7_000_005
        await feedback_client.post(f"/users/{user}/ratings", json={"ratings": [{"movie_id": 2, "rating": 5}]})
        assert 2 not in await _ids(feedback_client, user, k=40)
        await feedback_client.delete(f"/users/{user}/ratings/2")
        assert (await feedback_client.get(f"/users/{user}/recommendations")).json()["known_user"] is False

    async def test_predictions_use_stored_ratings(self, feedback_client: httpx.AsyncClient) -> None:
        user = 5_000_000_001
        pairs = {"pairs": [{"user_id": user, "movie_id": 30}, {"user_id": user, "movie_id": 31}]}
        before = (await feedback_client.post("/predictions", json=pairs)).json()["predictions"]
        assert [p["known_user"] for p in before] == [False, False]
        ratings = [{"movie_id": m, "rating": 5 if m % 2 == 0 else 1} for m in range(2, 14)]
        await feedback_client.post(f"/users/{user}/ratings", json={"ratings": ratings})
        after = (await feedback_client.post("/predictions", json=pairs)).json()["predictions"]
        assert [p["known_user"] for p in after] == [True, True]
        assert after[0]["rating"] > after[1]["rating"] + 1.0  # even movie 30 over odd movie 31


class TestEvents:
    async def test_store_events(self, feedback_client: httpx.AsyncClient) -> None:
        body = {"events": [{"movie_id": 1, "kind": "view"}, {"movie_id": 2, "kind": "click"}]}
        response = await feedback_client.post("/users/5/events", json=body)
        assert response.status_code == 201
        assert response.json() == {"user_id": 5, "stored": 2}

    async def test_bad_event(self, feedback_client: httpx.AsyncClient) -> None:
        bad_kind = await feedback_client.post(
            "/users/5/events", json={"events": [{"movie_id": 1, "kind": "x"}]}
        )
        assert bad_kind.status_code == 422
        unknown = await feedback_client.post(
            "/users/5/events", json={"events": [{"movie_id": 404, "kind": "view"}]}
        )
        assert unknown.status_code == 404

    async def test_events_personalise_a_new_user(self, feedback_client: httpx.AsyncClient) -> None:
        """Events alone fold a new user in; watched movies are not recommended back, clicked
        ones may be."""
        user = 4_100_000_000
        assert (await feedback_client.get(f"/users/{user}/recommendations")).json()["known_user"] is False
        watched = [2, 4, 6, 8]
        events = [{"movie_id": m, "kind": "finish"} for m in watched] + [{"movie_id": 10, "kind": "click"}]
        assert (
            await feedback_client.post(f"/users/{user}/events", json={"events": events})
        ).status_code == 201
        after = (await feedback_client.get(f"/users/{user}/recommendations", params={"k": 10})).json()
        assert after["known_user"] is True
        ids = [m["movie_id"] for m in after["items"]]
        assert not set(ids) & set(watched)
        assert sum(i % 2 == 0 for i in ids) >= 8  # the even taste group
        deeper = await _ids(feedback_client, user, k=36)  # every movie not watched
        assert 10 in deeper  # clicked, not watched: still recommendable
        rows = (await feedback_client.get(f"/users/{user}/because-you-watched")).json()["rows"]
        assert {row["because"]["movie_id"] for row in rows} <= set(watched)
        # Events are not ratings: predictions stay those of an unknown user.
        pair = {"pairs": [{"user_id": user, "movie_id": 30}]}
        assert (await feedback_client.post("/predictions", json=pair)).json()["predictions"][0][
            "known_user"
        ] is False

    async def test_events_change_a_cached_ranking(self, feedback_client: httpx.AsyncClient) -> None:
        user = 7  # an odd-taste user of the bundle, ranking cached by the first read
        before = await _ids(feedback_client, user, k=5)
        assert sum(i % 2 == 1 for i in before) >= 4
        evens = [m for m in range(2, 41, 2) if m not in seen_by(user)][:8]
        events = [{"movie_id": m, "kind": "finish"} for m in evens for _ in range(3)]
        await feedback_client.post(f"/users/{user}/events", json={"events": events})
        after = await _ids(feedback_client, user, k=5)
        assert after != before
        assert not set(after) & set(evens)  # watched now: never recommended back

    async def test_a_rating_outweighs_events_of_the_movie(self, feedback_client: httpx.AsyncClient) -> None:
        user = 4_100_000_001
        await feedback_client.post(
            f"/users/{user}/events", json={"events": [{"movie_id": m, "kind": "play"} for m in (3, 5, 7)]}
        )
        await feedback_client.post(
            f"/users/{user}/ratings", json={"ratings": [{"movie_id": m, "rating": 0.5} for m in (3, 5, 7)]}
        )
        rows = (await feedback_client.get(f"/users/{user}/because-you-watched", params={"rows": 3})).json()
        assert [row["because"]["movie_id"] for row in rows["rows"]] == [3, 5, 7]  # equal ratings, by id


async def test_concurrent_writers_lose_nothing(feedback_client: httpx.AsyncClient) -> None:
    """50 writers, overlapping users and movies: every acknowledged write is stored, once."""

    async def write(n: int) -> httpx.Response:
        user = 8_000_000 + n % 5
        ratings = [{"movie_id": 1 + (n + j) % 12, "rating": 1 + (n + j) % 5} for j in range(4)]
        return await feedback_client.post(f"/users/{user}/ratings", json={"ratings": ratings})

    responses = await asyncio.gather(*(write(n) for n in range(50)))
    assert [r.status_code for r in responses] == [201] * 50
    expected: dict[int, set[int]] = {}
    for n in range(50):
        expected.setdefault(8_000_000 + n % 5, set()).update(1 + (n + j) % 12 for j in range(4))
    for user, movies in expected.items():
        page = (await feedback_client.get(f"/users/{user}/ratings", params={"limit": 500})).json()
        assert page["total"] == len(movies)
        assert sorted(r["movie_id"] for r in page["items"]) == sorted(movies)


async def test_database_down_then_back(artifacts: Path) -> None:
    """With PostgreSQL refusing connections, reads answer from the bundle and writes get a
    clear 503; once it accepts connections again, writes work without a restart."""
    async with postgres_database() as url, serving(artifacts, url) as client:
        name = url.rsplit("/", 1)[1]
        admin = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

        async def allow(flag: bool) -> None:
            async with admin.connect() as connection:
                await connection.execute(
                    text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(flag).lower()}')
                )
                if not flag:
                    await connection.execute(
                        text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                        {"n": name},
                    )

        try:
            await allow(False)
            reads = await client.get("/users/9/recommendations")
            assert reads.status_code == 200
            assert reads.json()["items"]
            write = await client.post("/users/9/ratings", json={"ratings": [{"movie_id": 1, "rating": 4}]})
            assert write.status_code == 503
            assert write.json()["error"] == "database_unavailable"
            await allow(True)
            write = await client.post("/users/9/ratings", json={"ratings": [{"movie_id": 1, "rating": 4}]})
            assert write.status_code == 201
            assert (await client.get("/users/9/ratings")).json()["total"] == 1
        finally:
            await allow(True)
            await admin.dispose()


async def test_an_unmigrated_database_stops_startup_naming_the_fix(artifacts: Path, tmp_path: Path) -> None:
    """A database reachable but without the schema would answer every write 503 as if down:
    the service refuses to start and says how to migrate it. The same file once migrated
    starts."""
    url = f"sqlite+aiosqlite:///{tmp_path}/new.db"
    app = create_app(Settings(artifacts_dir=artifacts, database_url=url, migrate_on_start=False))
    with pytest.raises(StartupError, match=r"new\.db has not been migrated: run `make migrate`"):
        async with LifespanManager(app):
            pass
    await asyncio.to_thread(migrate.upgrade, url)
    async with LifespanManager(create_app(Settings(artifacts_dir=artifacts, database_url=url))):
        pass


async def test_a_database_migrated_past_this_code_or_unreachable_still_serves(
    artifacts: Path, tmp_path: Path
) -> None:
    """A newer migration (code rolled back) keeps its tables; an unreachable database may come
    back (reads answer from the bundle meanwhile, writes 503): neither stops start-up."""
    url = f"sqlite+aiosqlite:///{tmp_path}/ahead.db"
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    await engine.dispose()
    nowhere = "postgresql+asyncpg://postgres@127.0.0.1:1/cinerec"  # nothing listens on port 1
    for database_url in (url, nowhere):
        app = create_app(Settings(artifacts_dir=artifacts, database_url=database_url, migrate_on_start=False))
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
        ):
            assert (await http.get("/users/3/recommendations")).status_code == 200
            write = await http.post("/users/3/ratings", json={"ratings": [{"movie_id": 1, "rating": 4}]})
            assert write.status_code == (201 if database_url == url else 503)
    # Asked to migrate it, this code cannot: one clear line, no traceback of Alembic's.
    app = create_app(Settings(artifacts_dir=artifacts, database_url=url, migrate_on_start=True))
    with pytest.raises(StartupError, match="cannot start: Can't locate revision identified by '9999_from"):
        async with LifespanManager(app):
            pass


def test_a_ranking_read_before_a_write_is_not_cached(recommender: Recommender) -> None:
    """A read that fetched the user's feedback before a write finished must not cache what it
    computed from it: the next read has to see the write."""
    since = recommender.generation
    recommender.invalidate(4)  # a write lands while the read is under way
    recommender.ranking_for(4, None, since)
    assert recommender.cached_ranking(4) is None
    recommender.ranking_for(4, None, recommender.generation)
    assert recommender.cached_ranking(4) is not None


async def test_replicas_see_each_others_writes_within_the_cache_time(artifacts: Path) -> None:
    """Two processes on one PostgreSQL database: a write through one reaches the other's cached
    ranking once FEEDBACK_CACHE_SECONDS has passed."""
    user = 4_200_000_000
    async with (
        postgres_database() as url,
        serving(artifacts, url, feedback_cache_seconds=1.0) as writer,
        serving(artifacts, url, feedback_cache_seconds=1.0) as reader,
    ):
        assert (await reader.get(f"/users/{user}/recommendations")).json()["known_user"] is False
        ratings = {"ratings": [{"movie_id": m, "rating": 5} for m in (2, 4, 6)]}
        assert (await writer.post(f"/users/{user}/ratings", json=ratings)).status_code == 201
        assert (await reader.get(f"/users/{user}/recommendations")).json()["known_user"] is False  # cached
        await asyncio.sleep(1.1)
        assert (await reader.get(f"/users/{user}/recommendations")).json()["known_user"] is True


async def test_only_users_with_stored_feedback_are_looked_up(
    artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The users with feedback are listed at start-up: what was stored before a restart counts
    at once, nobody else's reads ask the database, and a user who writes later (then a bundle
    reload) is looked up again."""
    url = f"sqlite+aiosqlite:///{tmp_path}/fb.db"
    ratings = {"ratings": [{"movie_id": m, "rating": 5} for m in (2, 4, 6)]}
    before, after = NEW_USER + 10, NEW_USER + 11
    async with serving(artifacts, url) as first:
        assert (await first.post(f"/users/{before}/ratings", json=ratings)).status_code == 201
    app = create_app(Settings(artifacts_dir=artifacts, database_url=url))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        repository = app.state.services.feedback.repository
        looked_up: list[int] = []
        original = repository.feedback_of_users

        async def counting(user_ids: Sequence[int]) -> Any:
            looked_up.extend(user_ids)
            return await original(user_ids)

        monkeypatch.setattr(repository, "feedback_of_users", counting)
        assert (await http.get(f"/users/{before}/recommendations")).json()["known_user"] is True
        assert (await http.get("/users/3/recommendations")).status_code == 200
        assert (await http.get(f"/users/{NEW_USER + 12}/recommendations")).json()["known_user"] is False
        pairs = {"pairs": [{"user_id": 3, "movie_id": 2}, {"user_id": NEW_USER + 13, "movie_id": 2}]}
        assert (await http.post("/predictions", json=pairs)).status_code == 200
        assert looked_up == [before]
        assert (await http.post(f"/users/{after}/ratings", json=ratings)).status_code == 201
        assert (await http.post("/admin/reload")).status_code == 200
        assert (await http.get(f"/users/{after}/recommendations")).json()["known_user"] is True
        assert looked_up == [before, after]


async def test_a_write_begun_before_a_reload_reaches_the_new_bundles_caches(
    artifacts: Path, tmp_path: Path
) -> None:
    """A rating whose request started on the old bundle's services and was stored after
    /admin/reload swapped in new ones still drops what the new ones cached for that user."""
    url = f"sqlite+aiosqlite:///{tmp_path}/fb.db"
    app = create_app(Settings(artifacts_dir=artifacts, database_url=url, migrate_on_start=True))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        old = app.state.services
        assert (await http.post("/admin/reload")).status_code == 200
        assert app.state.services is not old
        first = (await http.get("/users/3/recommendations?k=5")).json()["items"][0]["movie_id"]
        await old.feedback.rate(3, [(first, 5.0, None)])  # the old services' write lands now
        after = (await http.get("/users/3/recommendations?k=5")).json()["items"]
        assert first not in {m["movie_id"] for m in after}
