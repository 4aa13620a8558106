"""Feedback benchmark: sustained rating ingestion (requests/s, ratings/s) on SQLite and
PostgreSQL, and the latency of "post a rating, then get recommendations" as one user sees it.

The real app runs in process over httpx's ASGI transport (no network); each backend gets a
fresh database. /health is timed in the same run as the baseline.

    .venv/bin/python -m bench.feedback --artifacts artifacts [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.settings import Settings

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
BATCH = 5


async def run_backend(artifacts: Path, url: str, seconds: float, concurrency: int) -> None:
    app = create_app(Settings(artifacts_dir=artifacts, database_url=url, migrate_on_start=True))
    async with LifespanManager(app) as manager:
        movies = app.state.services.bundle.movies["movie_id"].to_numpy()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
            rng = np.random.default_rng(0)
            done = {"requests": 0, "errors": 0}
            deadline = time.perf_counter() + seconds

            async def writer(worker: int) -> None:
                n = 0
                while time.perf_counter() < deadline:
                    user = 10_000_000 + (worker * 1000 + n) % 5000
                    picks = rng.choice(movies, BATCH, replace=False)
                    body = {
                        "ratings": [{"movie_id": int(m), "rating": float(rng.integers(1, 6))} for m in picks]
                    }
                    response = await client.post(f"/users/{user}/ratings", json=body)
                    done["requests"] += 1
                    done["errors"] += response.status_code != 201
                    n += 1

            started = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(concurrency)))
            elapsed = time.perf_counter() - started
            rps = done["requests"] / elapsed
            print(f"  ingestion: {rps:,.0f} requests/s, {rps * BATCH:,.0f} ratings/s "
                  f"({concurrency} writers, {BATCH} ratings each, {done['errors']} errors)")  # fmt: skip

            health = []
            for _ in range(200):
                started = time.perf_counter()
                await client.get("/health")
                health.append(time.perf_counter() - started)
            baseline = float(np.median(health)) * 1000

            latencies = []
            for n in range(100):
                user = 20_000_000 + n
                started = time.perf_counter()
                await client.post(
                    f"/users/{user}/ratings", json={"ratings": [{"movie_id": int(movies[n]), "rating": 5}]}
                )
                response = await client.get(f"/users/{user}/recommendations?k=10")
                latencies.append(time.perf_counter() - started)
                assert response.json()["known_user"] is True
            p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
            print(f"  post a rating, then get recommendations: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"(x{p50 / baseline:.0f} of a /health request, {baseline:.2f} ms, same run)")  # fmt: skip


def fold_in_cost(artifacts: Path) -> None:
    """Fold-in of a user with 300 ratings against the fixed item factors, next to scoring the
    catalog for a trained user (the read path's baseline) in the same run."""
    from training.bundle import read_bundle

    bundle = read_bundle(artifacts)
    ranker = bundle.ranker
    rng = np.random.default_rng(0)
    items = rng.choice(ranker.als.item_factors.shape[0], 300, replace=False)
    ratings = rng.choice([3.0, 4.0, 5.0], 300)

    def best_ms(work: Callable[[], object], repeat: int = 200) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return float(np.median(times)) * 1000

    fold = best_ms(lambda: ranker.fold_in(items, ratings))
    vector = ranker.als.user_factors[0]
    score = best_ms(lambda: vector @ ranker.als.item_factors.T)
    print(
        f"fold-in of a 300-rating user: {fold:.3f} ms "
        f"(ALS scores of one user over the catalog: {score:.3f} ms)"
    )


async def main_async(artifacts: Path, seconds: float, concurrency: int) -> None:
    fold_in_cost(artifacts)
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite (aiosqlite, WAL):")
        await run_backend(artifacts, f"sqlite+aiosqlite:///{folder}/bench.db", seconds, concurrency)
    name = f"cinerec_bench_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        print("PostgreSQL (asyncpg):")
        await run_backend(artifacts, POSTGRES.rsplit("/", 1)[0] + f"/{name}", seconds, concurrency)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main_async(args.artifacts, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
