"""Visitors answered by a second process (app.services.visitor_process): the same answers and
errors as the thread pool, and no visitor lost when the child stops, hangs, cannot start or is
retired by a reload."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import weakref
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from app.errors import DomainError
from app.main import create_app
from app.metrics import Metrics
from app.services import visitor_process
from app.services.catalog import Filters
from app.services.concurrency import Args, Outcome, run_each
from app.services.recommender import Recommender
from app.services.visitor_process import VisitorProcess, VisitorWorker
from app.settings import Settings
from training.bundle import read_bundle


def visitor(rated: Mapping[int, float], k: int = 5, filters: Filters | None = None) -> Args:
    return (dict(rated), k, filters or Filters()), {}


CALLS = [
    visitor({1: 5.0, 3: 4.0}),
    visitor({2: 4.5}, k=3, filters=Filters(genre="Drama", year_from=1990, exclude=(4, 6))),
    visitor({1: 5.0, 2: 1.0, 5: 3.5}, k=10, filters=Filters(year_to=1995)),
    visitor({1: 5.0, 999_999: 4.0}),  # a movie not in the catalog
    visitor({1: 9.0}),  # off the scale
]


def comparable(outcomes: list[Outcome]) -> list[object]:
    """Answers as bytes, errors as what the API answers for them."""
    return [
        result if error is None else (error.status_code, error.body())  # type: ignore[attr-defined]
        for result, error in outcomes
    ]


def up(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("cinerec_visitor_process_up")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def process(artifacts: Path, metrics: Metrics) -> AsyncIterator[VisitorProcess]:
    bundle = read_bundle(artifacts)
    started = VisitorProcess(bundle.path, bundle.version, metrics)
    started.start()
    assert started.pid is None  # answered here until the child is ready
    assert await started.ready()
    yield started
    await started.close()


async def test_the_child_answers_as_the_thread_pool_does(
    process: VisitorProcess, recommender: Recommender
) -> None:
    assert process.pid is not None
    assert process.pid != os.getpid()
    here = run_each(recommender.visitor_answer, CALLS)
    answered = await process(recommender.visitor_answer, CALLS)
    assert comparable(answered) == comparable(here)
    assert all(error is None for _, error in answered[:3])
    assert [type(error) for _, error in answered[3:]] == [DomainError, DomainError]
    assert [error.status_code for _, error in answered[3:]] == [422, 422]  # type: ignore[union-attr]


async def test_a_dead_child_is_replaced_and_its_batch_answered_here(
    process: VisitorProcess, metrics: Metrics, recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visitor_process, "RESTART_SECONDS", 0.0)
    first = process.pid
    assert first is not None
    assert up(metrics) == 1
    os.kill(first, signal.SIGKILL)
    answered = await process(recommender.visitor_answer, CALLS)
    assert comparable(answered) == comparable(run_each(recommender.visitor_answer, CALLS))
    assert process.pid is None
    assert up(metrics) == 0
    assert await process.ready()  # a new child was started in the background
    assert process.pid not in (None, first)
    assert up(metrics) == 1
    assert comparable(await process(recommender.visitor_answer, CALLS[:1])) == comparable(
        run_each(recommender.visitor_answer, CALLS[:1])
    )


async def test_a_hung_child_is_killed_and_its_batch_answered_here(
    process: VisitorProcess, recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visitor_process, "BATCH_SECONDS", 0.5)
    monkeypatch.setattr(visitor_process, "RESTART_SECONDS", 3600.0)  # no new child in this test
    hung = process.pid
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)
    answered = await asyncio.wait_for(process(recommender.visitor_answer, CALLS), 10)
    assert comparable(answered) == comparable(run_each(recommender.visitor_answer, CALLS))
    assert process.pid is None
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(hung, 0)


async def test_close_stops_the_child_and_loses_no_visitor(
    process: VisitorProcess, recommender: Recommender
) -> None:
    child = process._worker.process  # type: ignore[union-attr]
    many = CALLS[:3] * 50
    in_flight = asyncio.create_task(process(recommender.visitor_answer, many))
    await asyncio.sleep(0)  # the batch is on its way to the child
    await process.close()
    assert child.poll() is not None  # stopped, and reaped
    assert comparable(await in_flight) == comparable(run_each(recommender.visitor_answer, many))
    assert process.pid is None
    # Visitors keep being answered, in this process.
    assert comparable(await process(recommender.visitor_answer, CALLS)) == comparable(
        run_each(recommender.visitor_answer, CALLS)
    )
    assert process.pid is None


async def test_a_batch_cancelled_at_the_child_retires_it(
    process: VisitorProcess, recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its answers would otherwise be read as the next batch's."""
    monkeypatch.setattr(visitor_process, "RESTART_SECONDS", 3600.0)  # no new child in this test
    child = process._worker.process  # type: ignore[union-attr]
    in_flight = asyncio.create_task(process(recommender.visitor_answer, CALLS[:3] * 500))
    await asyncio.sleep(0)  # the batch is on its way to the child, its answers not back yet
    in_flight.cancel()
    with pytest.raises(asyncio.CancelledError):
        await in_flight
    assert process.pid is None
    assert child.wait(5) is not None  # killed
    assert comparable(await process(recommender.visitor_answer, CALLS)) == comparable(
        run_each(recommender.visitor_answer, CALLS)
    )


async def test_a_child_that_cannot_start_leaves_visitors_here(
    artifacts: Path, tmp_path: Path, recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = read_bundle(artifacts)
    broken = tmp_path / "bundle"
    shutil.copytree(bundle.path, broken)
    (broken / "manifest.json").write_text("{")  # the child cannot read it
    spawned: list[Path] = []
    spawn = VisitorWorker.spawn

    def counted(bundle_dir: Path) -> VisitorWorker:
        spawned.append(bundle_dir)
        return spawn(bundle_dir)

    monkeypatch.setattr(VisitorWorker, "spawn", counted)
    monkeypatch.setattr(visitor_process, "RESTART_SECONDS", 0.0)
    process = VisitorProcess(broken, bundle.version, Metrics())
    process.start()
    assert not await process.ready()
    assert process.pid is None
    answered = await process(recommender.visitor_answer, CALLS)
    assert comparable(answered) == comparable(run_each(recommender.visitor_answer, CALLS))
    await asyncio.sleep(0.2)
    assert spawned == [broken]  # not started again: it would fail the same way
    await process.close()


async def test_a_child_that_cannot_be_spawned_leaves_visitors_here(
    artifacts: Path, recommender: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(visitor_process.sys, "executable", "/nonexistent/python")
    bundle = read_bundle(artifacts)
    process = VisitorProcess(bundle.path, bundle.version, Metrics())
    process.start()
    assert not await process.ready()
    answered = await process(recommender.visitor_answer, CALLS)
    assert comparable(answered) == comparable(run_each(recommender.visitor_answer, CALLS))
    await process.close()


async def test_the_session_client_answers_visitors_from_a_child(client: httpx.AsyncClient) -> None:
    answer = await client.post("/recommendations", json={"ratings": [{"movie_id": 1, "rating": 5}], "k": 3})
    assert answer.status_code == 200
    assert len(answer.json()["items"]) == 3
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families((await client.get("/metrics")).text)
        for sample in family.samples
    }
    assert samples["cinerec_visitor_process_up"] == 1


def children() -> set[int]:
    """This process's live visitor processes, by pid."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"app.services.visitor_process" in command and " Z " not in stat:
            found.add(int(entry.name))
    return found


async def test_a_reload_retires_the_old_child_and_shutdown_the_new(artifacts: Path, tmp_path: Path) -> None:
    before = children()
    settings = Settings(
        artifacts_dir=artifacts,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/v.db",
        migrate_on_start=True,
        visitor_process=True,
    )
    app = create_app(settings)
    body = {"ratings": [{"movie_id": 1, "rating": 5}, {"movie_id": 2, "rating": 4}], "k": 4}
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        assert await app.state.services.process.ready()
        first = children() - before
        assert len(first) == 1
        answer = (await http.post("/recommendations", json=body)).json()
        replaced = weakref.ref(app.state.services)
        gc.disable()  # freed by reference counting, its visitor process included (see freeze_heap)
        try:
            assert (await http.post("/admin/reload")).status_code == 200
            assert replaced() is None
        finally:
            gc.enable()
        assert await app.state.services.process.ready()
        second = children() - before
        assert len(second) == 1
        assert second != first  # the old child is gone, a new one serves
        assert (await http.post("/recommendations", json=body)).json() == answer
        # Two reloads at once: each stops the child of the services it replaced, none is left over.
        both = await asyncio.gather(http.post("/admin/reload"), http.post("/admin/reload"))
        assert [r.status_code for r in both] == [200, 200]
        assert await app.state.services.process.ready()
        third = children() - before
        assert len(third) == 1
        assert third != second
        assert (await http.post("/recommendations", json=body)).json() == answer
    assert children() - before == set()  # shutdown stopped it
