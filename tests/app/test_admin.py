"""API keys on writes and admin routes; zero-downtime bundle reload."""

from __future__ import annotations

import gc
import json
import logging
import shutil
import weakref
from pathlib import Path

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from app.deps import GC_THRESHOLDS
from app.logs import JsonFormatter, request_id
from app.main import create_app
from app.settings import Settings
from tests.conftest import write_movielens_csv
from training.build import build
from training.config import BuildConfig, TuneConfig
from training.datasets import load_dataset
from training.models.als import ALSConfig


async def test_keys_guard_writes_and_admin_not_reads(artifacts: Path, tmp_path: Path) -> None:
    settings = Settings(
        artifacts_dir=artifacts,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/keys.db",
        migrate_on_start=True,
        api_keys="alpha, beta",
    )
    app = create_app(settings)
    body = {"ratings": [{"movie_id": 1, "rating": 4}]}
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        missing = await http.post("/users/1/ratings", json=body)
        assert missing.status_code == 401
        assert missing.json()["error"] == "unauthorized"
        assert "alpha" not in missing.text
        assert (
            await http.post("/users/1/ratings", json=body, headers={"X-API-Key": "gamma"})
        ).status_code == 401
        assert (
            await http.post("/users/1/ratings", json=body, headers={"X-API-Key": "beta"})
        ).status_code == 201
        assert (await http.delete("/users/1/ratings/1")).status_code == 401
        assert (await http.post("/admin/reload")).status_code == 401
        assert (await http.get("/users/1/ratings")).status_code == 200  # reads stay open
        assert (await http.get("/users/1/recommendations")).status_code == 200
        # The schema documents the 401 on exactly the operations that answer it.
        guarded = {("post", "/users/{user_id}/ratings"), ("delete", "/users/{user_id}/ratings/{movie_id}")}
        guarded |= {("post", "/users/{user_id}/events"), ("post", "/admin/reload")}
        paths = (await http.get("/openapi.json")).json()["paths"]
        documented = {(m, p) for p, ops in paths.items() for m, op in ops.items() if "401" in op["responses"]}
        assert documented == guarded
        example = paths["/users/{user_id}/ratings"]["post"]["responses"]["401"]["content"]["application/json"]
        assert missing.json() == example["examples"]["unauthorized"]["value"]  # documented as answered
        assert (
            await http.post("/users/1/events", json={"events": [{"movie_id": 1, "kind": "view"}]})
        ).status_code == 401


async def test_reload_swaps_and_refuses_a_broken_bundle(artifacts: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(artifacts, root, symlinks=True)
    settings = Settings(
        artifacts_dir=root, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db", migrate_on_start=True
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        first = (await http.get("/health")).json()["model"]["version"]
        gc.set_threshold(700, 10, 10)
        config = BuildConfig(als=ALSConfig(factors=8, iterations=3), tune=TuneConfig(enabled="off"))
        build(load_dataset(write_movielens_csv(tmp_path / "ml-next")), root, config)
        replaced = weakref.ref(app.state.services)
        gc.disable()  # what frees the replaced services must be reference counting (see freeze_heap)
        try:
            reloaded = await http.post("/admin/reload")
            assert replaced() is None
        finally:
            gc.enable()
        assert reloaded.status_code == 200
        assert gc.get_threshold() == GC_THRESHOLDS  # set again with the new services' heap
        second = reloaded.json()["version"]
        assert reloaded.json()["previous"] == first
        assert second != first
        assert (await http.get("/health")).json()["model"]["version"] == second

        current = root / "current"
        factors = np.load(current / "als_item_factors.npy")
        np.save(current / "als_item_factors.npy", factors + 1)
        refused = await http.post("/admin/reload")
        assert refused.status_code == 409
        assert "does not match its checksum" in refused.json()["detail"]
        assert (await http.get("/health")).json()["model"]["version"] == second
        assert (await http.get("/users/2/recommendations")).status_code == 200


async def _samples(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (await client.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics(client: httpx.AsyncClient) -> None:
    movie = (
        "cinerec_requests_total",
        frozenset({"method": "GET", "route": "/movies/{movie_id}", "status": "200"}.items()),
    )
    hits = ("cinerec_ranking_cache_total", frozenset({"result": "hit"}.items()))
    before = await _samples(client)
    await client.get("/movies/2")
    await client.get("/movies/3")
    await client.get("/users/2/recommendations")
    await client.get("/users/2/recommendations")
    after = await _samples(client)
    assert after[movie] - before.get(movie, 0) == 2
    assert after[hits] - before.get(hits, 0) >= 1  # the second request found the ranking
    buckets = {labels for name, labels in after if name == "cinerec_request_seconds_bucket"}
    assert frozenset({"le": "0.005", "method": "GET", "route": "/movies/{movie_id}"}.items()) in buckets
    text = (await client.get("/metrics")).text
    assert 'cinerec_model_info{dataset="ml-mini"' in text
    health = (await client.get("/health")).json()["model"]["version"]
    assert f'version="{health}"' in text


async def test_body_limit_and_cors(artifacts: Path, tmp_path: Path) -> None:
    settings = Settings(
        artifacts_dir=artifacts,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/l.db",
        max_body_bytes=1000,
        cors_origins="https://app.example",
    )
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        pairs = {"pairs": [{"user_id": 1, "movie_id": 1}] * 100}
        assert (await http.post("/predictions", json=pairs)).status_code == 413
        small = await http.post("/predictions", json={"pairs": [{"user_id": 1, "movie_id": 1}]})
        assert small.status_code == 200
        preflight = await http.options(
            "/trending",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = await http.get("/trending", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_request_id_is_echoed_and_logged(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    fresh = await client.get("/health")
    assert len(fresh.headers["x-request-id"]) == 32

    token = request_id.set("abc-123")
    try:
        record = logging.LogRecord("cinerec", logging.INFO, __file__, 1, "served %s", ("x",), None)
        record.fields = {"status": 200}
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["request_id"] == "abc-123"
    assert line["message"] == "served x"
    assert line["status"] == 200
    assert line["level"] == "info"
