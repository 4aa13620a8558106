"""SingleFlight (concurrent calls for one key share one run of the work) and Batcher (calls
that arrive together share one hop, by default to the thread pool)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.services import concurrency
from app.services.concurrency import Batcher, SingleFlight


async def test_concurrent_calls_share_one_run_and_later_calls_start_another() -> None:
    flight: SingleFlight[int] = SingleFlight()
    runs = []

    async def work() -> int:
        runs.append(1)
        await asyncio.sleep(0.01)
        return len(runs)

    assert await asyncio.gather(*(flight.run("u", work) for _ in range(20))) == [1] * 20
    assert await flight.run("other", work) == 2  # another key, its own run
    assert await flight.run("u", work) == 3  # the first run is over: a new one


async def test_every_caller_gets_the_exception() -> None:
    flight: SingleFlight[int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    results = await asyncio.gather(*(flight.run(1, fail) for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [ValueError] * 3


async def test_a_caller_going_away_does_not_cancel_the_others() -> None:
    flight: SingleFlight[str] = SingleFlight()

    async def work() -> str:
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.create_task(flight.run(1, work))
    second = asyncio.create_task(flight.run(1, work))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "done"


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each batch a Batcher hands to the thread pool, in order."""
    sizes: list[int] = []
    real = concurrency.run_in_threadpool

    async def counted(run: Callable[..., Any], work: Callable[..., Any], calls: list[Any]) -> Any:
        sizes.append(len(calls))
        return await real(run, work, calls)

    monkeypatch.setattr(concurrency, "run_in_threadpool", counted)
    return sizes


async def test_calls_made_together_share_one_hop_and_get_their_own_results(hops: list[int]) -> None:
    worker = threading.get_ident()
    threads: set[int] = set()

    def work(x: int, scale: int = 1) -> int:
        threads.add(threading.get_ident())
        return x * scale

    batcher = Batcher(work)
    assert await asyncio.gather(*(batcher(i, scale=3) for i in range(20))) == [3 * i for i in range(20)]
    assert hops == [20]
    assert worker not in threads  # the work ran in the pool, not on the event loop
    assert await batcher(7) == 7  # a lone call later: its own hop
    assert hops == [20, 1]


class GatedWork:
    """Work for a Batcher: -x for x, each call held at `gate` (only those in `held`, when
    given) until the test opens it; `computed` lists the calls made, in order."""

    def __init__(self, held: set[int] | None = None) -> None:
        self.gate = threading.Event()
        self.held = held
        self.computed: list[int] = []

    def __call__(self, x: int) -> int:
        if self.held is None or x in self.held:
            self.gate.wait(5)
        self.computed.append(x)
        return -x


async def test_calls_arriving_during_a_batch_go_together_as_the_next(hops: list[int]) -> None:
    work = GatedWork(held={0})
    batcher = Batcher(work)
    first = asyncio.create_task(batcher(0))
    await asyncio.sleep(0.05)  # the first batch is in the pool, held at the gate
    later = [asyncio.create_task(batcher(i)) for i in range(1, 11)]
    await asyncio.sleep(0.05)
    work.gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [-i for i in range(1, 11)]
    assert hops == [1, 10]
    assert work.computed == list(range(11))  # in arrival order


async def test_each_call_gets_its_own_exception() -> None:
    def work(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    batcher = Batcher(work)
    results = await asyncio.gather(*(batcher(i) for i in range(6)), return_exceptions=True)
    assert results[0::2] == [0, 2, 4]
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3", "odd 5"]


async def test_a_failing_hop_fails_its_calls_and_the_batcher_goes_on() -> None:
    failing = True

    async def hop(work: Callable[..., Any], calls: list[Any]) -> list[Any]:
        if failing:
            raise OSError("the hop broke")
        return await concurrency.through_thread_pool(work, calls)

    batcher = Batcher(lambda x: -x, hop)
    results = await asyncio.gather(*(batcher(i) for i in range(3)), return_exceptions=True)
    assert [str(r) for r in results] == ["the hop broke"] * 3
    failing = False
    assert await batcher(4) == -4


async def test_a_caller_going_away_leaves_the_others_their_results() -> None:
    work = GatedWork()
    batcher = Batcher(work)
    calls = [asyncio.create_task(batcher(i)) for i in range(4)]
    await asyncio.sleep(0.05)
    calls[1].cancel()
    work.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
    assert [await calls[i] for i in (0, 2, 3)] == [0, -2, -3]
    assert await batcher(9) == -9  # and the batcher still works


async def test_a_call_whose_caller_went_away_before_its_batch_is_not_computed(hops: list[int]) -> None:
    work = GatedWork(held={0})
    batcher = Batcher(work)
    first = asyncio.create_task(batcher(0))
    await asyncio.sleep(0.05)  # the first batch is in the pool, held at the gate
    waiting = [asyncio.create_task(batcher(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0.01)
    waiting[1].cancel()
    work.gate.set()
    assert [await first, await waiting[0], await waiting[2]] == [0, -1, -3]
    assert work.computed == [0, 1, 3]
    assert hops == [1, 2]


async def test_a_cancelled_drain_cancels_the_calls_waiting_on_it() -> None:
    work = GatedWork()
    batcher = Batcher(work)
    calls: list[Awaitable[int]] = [asyncio.create_task(batcher(i)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert batcher._draining is not None
    batcher._draining.cancel()  # as when the loop shuts down
    results = await asyncio.gather(*calls, return_exceptions=True)
    work.gate.set()
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert await batcher(5) == -5
