"""Sharing work between concurrent requests: one run per key (SingleFlight), one hop off the
event loop per batch (Batcher)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
P = ParamSpec("P")
Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, the exception raised)
Args = tuple[tuple[Any, ...], dict[str, Any]]  # a call's positional and keyword arguments
Call = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]  # args, kwargs, the caller's future
# How a batch of calls reaches the work and comes back with one outcome per call, in order.
Hop = Callable[[Callable[..., Any], list[Args]], Awaitable[list[Outcome]]]


def run_each(work: Callable[..., Any], calls: list[Args]) -> list[Outcome]:
    """`work` over the calls one after another, each with its own result or exception."""
    outcomes: list[Outcome] = []
    for args, kwargs in calls:
        try:
            outcomes.append((work(*args, **kwargs), None))
        except Exception as error:  # handed to its own caller
            outcomes.append((None, error))
    return outcomes


async def through_thread_pool(work: Callable[..., Any], calls: list[Args]) -> list[Outcome]:
    """The default Hop: the whole batch in one thread-pool hop."""
    return await run_in_threadpool(run_each, work, calls)


class SingleFlight(Generic[T]):
    """`await flight.run(key, work)`: concurrent calls with one key share one run of `work`.

    The first caller starts it; the others await the same result (or exception), all woken
    at once when it is done. A caller that goes away (a client disconnects) does not cancel
    the work for the others.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)


class Batcher(Generic[P, T]):
    """`await batcher(*args)` is `work(*args)` run off the event loop, where calls that arrive
    while a batch is being computed wait together and go as the next batch, in one hop: by
    default one thread-pool hop; `hop` may take it elsewhere (app.services.visitor_process
    sends visitors' batches to a second process).

    Under load a thread-pool hop costs the event loop more than the work it carries (a
    visitor's fold-in and ranking), and requests arrive faster than one batch is computed, so
    many share a hop; a lone call makes one hop, as `run_in_threadpool` would. Calls are run
    one after another in arrival order; each gets its own result or exception. The call of a
    caller that went away (a client disconnected) is not computed if its batch has not started,
    and its result is dropped otherwise.
    """

    def __init__(self, work: Callable[P, T], hop: Hop = through_thread_pool) -> None:
        self._work = work
        self._hop = hop
        self._waiting: list[Call] = []
        self._draining: asyncio.Task[None] | None = None

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, kwargs, future))
        if self._draining is None:
            # Started on the loop's next turn: the calls made on this turn join the first batch.
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[Call] = []
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[2].done()]
                self._waiting = []
                if not batch:  # every caller went away
                    continue
                try:
                    outcomes = await self._hop(self._work, [(args, kwargs) for args, kwargs, _ in batch])
                except Exception as failed:  # the hop itself failed: every call in it gets the error
                    outcomes = [(None, failed)] * len(batch)
                for (_, _, future), (result, error) in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller went away
                        continue
                    if error is None:
                        future.set_result(result)
                    else:
                        future.set_exception(error)
                batch = []
        finally:
            self._draining = None
            # Only when the drain itself is cancelled (the loop shutting down): no call is left
            # waiting for a batch that will not come.
            for _, _, future in batch + self._waiting:
                future.cancel()
            self._waiting = []
