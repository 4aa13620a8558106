"""Server-side time per request, in process (no network), for each main endpoint and /health.

Calls the real app (lifespan, middleware, routing, validation, serialisation) as an ASGI
server would, with no HTTP client in between, against a bundle: the figures are what one
request costs the server. /health is timed in the same run as the baseline, and each
endpoint's median is printed as a ratio to it.

Then the same in-process calls from 64 concurrent clients, for /health and for visitors
whose body is new on every request (the fold-in each time): requests/s and the ratio, the
load run's worst row (bench/load.sh) without HTTP, wrk or loopback sharing the two cores.

    .venv/bin/python -m bench.api --artifacts artifacts [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Iterator
from itertools import islice, product, repeat
from pathlib import Path
from string import ascii_lowercase
from urllib.parse import urlencode

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import orjson
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp, Message

from app.main import create_app
from app.services.search import readable
from app.settings import Settings

WARM_UP = 3  # requests before each timed series
CLIENTS = 64  # concurrent callers in the throughput rows, as bench/load.sh's wrk connections


async def call(app: ASGIApp, method: str, url: str, body: bytes) -> tuple[int, bytes]:
    """One request through the ASGI interface, as uvicorn would make it: (status, body)."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    received = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def measure(
    app: ASGIApp, method: str, url: str | Iterator[str], body: object | Iterator[object], n: int
) -> np.ndarray:
    """`url` is one URL, or an iterator handing each request a URL of its own; `body` likewise.
    A body is encoded before the clock starts: a client's JSON encoding is not server time."""
    times = []
    for _ in range(n):
        target = url if isinstance(url, str) else next(url)
        payload = next(body) if isinstance(body, Iterator) else body
        content = b"" if payload is None else orjson.dumps(payload)
        started = time.perf_counter()
        status, answer = await call(app, method, target, content)
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"{method} {target}: {status} {answer[:200]!r}")
    return np.array(times) * 1000


async def throughput(
    app: ASGIApp, method: str, url: str, bodies: Iterator[object], clients: int, each: int
) -> float:
    """Requests/s of `clients` concurrent callers making `each` requests in turn; bodies are
    encoded before the clock starts."""
    payloads = iter([b"" if body is None else orjson.dumps(body) for body in islice(bodies, clients * each)])

    async def caller() -> None:
        for _ in range(each):
            status, answer = await call(app, method, url, next(payloads))
            if status != 200:
                raise SystemExit(f"{method} {url}: {status} {answer[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(clients)))
    return clients * each / (time.perf_counter() - started)


async def run(artifacts: Path, n: int) -> None:
    app = create_app(Settings(artifacts_dir=artifacts, migrate_on_start=True, log_level="warning"))
    async with LifespanManager(app) as manager:
        services = app.state.services
        # Visitors are timed as served: by the visitor process once it is ready (VISITOR_PROCESS).
        in_child = services.process is not None and await services.process.ready()
        print(f"visitors answered by {'a second process' if in_child else 'the thread pool'}")
        most_rated = services.catalog.cards[int(np.argmax(services.catalog.n_ratings))]
        movie, title = int(most_rated["movie_id"]), readable(most_rated["title"]).lower()
        user = int(services.bundle.user_ids[0])
        # Users never asked for before in this run (warm-up included), so their ranking is
        # computed, not read from the cache.
        others = services.bundle.user_ids[1:]
        fresh = (f"/users/{int(u)}/recommendations?k=10" for u in others)
        two_letters = (f"/movies?query={a}{b}" for a, b in product(ascii_lowercase, repeat=2))
        rng = np.random.default_rng(0)
        users = rng.choice(services.bundle.user_ids, 10_000)
        movies = rng.choice(services.bundle.movies["movie_id"].to_numpy(), 10_000)
        # Visitors rating three of the 300 most rated movies: a body not asked before each time
        # (the fold-in), then one body again and again (its kept answer).
        ids = np.array([card["movie_id"] for card in services.catalog.cards])
        popular = ids[np.argsort(-services.catalog.n_ratings, kind="stable")[:300]]
        visitors = (
            {
                "ratings": [
                    {"movie_id": int(m), "rating": float(r)}
                    for m, r in zip(
                        rng.choice(popular, 3, replace=False), rng.integers(1, 11, 3) / 2, strict=True
                    )
                ],
                "k": 10,
            }
            for _ in iter(int, 1)
        )
        pairs = {
            "pairs": [{"user_id": int(u), "movie_id": int(m)} for u, m in zip(users, movies, strict=True)]
        }
        cases: list[tuple[str, str, str | Iterator[str], object, int]] = [
            ("GET /health", "GET", "/health", None, n),
            ("GET /trending", "GET", "/trending?k=10", None, n),
            ("GET /top-rated", "GET", "/top-rated?k=10&genre=Drama", None, n),
            (f"GET /movies/{movie}/similar", "GET", f"/movies/{movie}/similar?k=10", None, n),
            # Title search: the most rated movie's title as a person types it and a word a third
            # of the titles hold, both ranked once and then read from the catalog's kept
            # rankings; two letters a search box sends first, new each time (ranked every time);
            # and browsing (no query).
            (f"GET /movies?query={title} (kept)", "GET", f"/movies?{urlencode({'query': title})}", None, n),
            ("GET /movies?query=the (kept)", "GET", "/movies?query=the", None, n),
            ("GET /movies?query={two letters, new}", "GET", two_letters, None, min(n, 676 - WARM_UP)),
            ("GET /movies (no query, page 2)", "GET", "/movies?offset=20", None, n),
            (f"GET /users/{user}/recommendations", "GET", f"/users/{user}/recommendations?k=10", None, n),
            ("GET /users/{new user}/recommendations", "GET", fresh, None, min(n, len(others) - WARM_UP)),
            (
                f"GET /users/{user}/because-you-watched",
                "GET",
                f"/users/{user}/because-you-watched?rows=3&k=10",
                None,
                n,
            ),
            ("POST /recommendations (new body)", "POST", "/recommendations", visitors, n),
            ("POST /recommendations (repeated)", "POST", "/recommendations", {"liked": [movie], "k": 10}, n),
            ("POST /predictions (10,000 pairs)", "POST", "/predictions", pairs, max(5, n // 20)),
        ]
        counts = services.bundle.manifest["counts"]
        print(
            f"bundle: {counts['movies']:,} movies, {counts['users']:,} users, {counts['ratings']:,} ratings"
        )
        baseline = None
        for label, method, url, body, reps in cases:
            await measure(manager.app, method, url, body, WARM_UP)
            ms = await measure(manager.app, method, url, body, reps)
            p50, p99 = np.percentile(ms, [50, 99])
            baseline = baseline or p50
            print(f"{label:<48} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  x{p50 / baseline:5.1f} of /health")

        each = max(n // 3, 5)
        print(f"{CLIENTS} concurrent clients in process, {CLIENTS * each:,} requests a row:")
        health = await throughput(manager.app, "GET", "/health", repeat(None), CLIENTS, each)
        new = await throughput(manager.app, "POST", "/recommendations", visitors, CLIENTS, each)
        again = await throughput(manager.app, "GET", "/health", repeat(None), CLIENTS, each)
        for label, rate in (
            ("GET /health", health),
            ("POST /recommendations (new body)", new),
            ("GET /health again", again),
        ):
            print(f"{label:<48} {rate:9,.0f} req/s  x{rate / health:5.2f} of /health")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.artifacts, args.requests))


if __name__ == "__main__":
    main()
