"""SingleFlight: concurrent calls for one key share one run of the work."""

from __future__ import annotations

import asyncio

import pytest

from app.services.rankings import SingleFlight


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
