"""Sharing work between concurrent requests: one run per key (SingleFlight), one thread-pool
hop per batch (Batcher)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

A = TypeVar("A")
T = TypeVar("T")
Outcome = tuple[Any, BaseException | None]  # (result, None) or (None, the exception raised)
Call = tuple[Any, "asyncio.Future[Any]"]  # the argument, the caller's future


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


class Batcher(Generic[A, T]):
    """`await batcher(arg)` is `many([arg])[0]` run in the thread pool, where calls that arrive
    while a batch is being computed wait together and go as the next batch: one hop and one
    call of `many` for them all.

    Under load a thread-pool hop costs the event loop more than the work it carries (a
    visitor's fold-in and ranking), and requests arrive faster than one batch is computed, so
    many share a hop; `many` can then do their work in one go (one compiled call that holds
    no GIL, say, rather than one per call, each handing the GIL back and forth with the
    loop). A lone call makes one hop, as `run_in_threadpool` would. `many` answers its
    arguments in order; where it raises, each argument of the batch is retried alone, so that
    each caller gets its own result or exception. The call of a caller that went away (a
    client disconnected) is not computed if its batch has not started, and its result is
    dropped otherwise.
    """

    def __init__(self, many: Callable[[list[A]], list[T]]) -> None:
        self._many = many
        self._waiting: list[Call] = []
        self._draining: asyncio.Task[None] | None = None

    async def __call__(self, arg: A) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((arg, future))
        if self._draining is None:
            # Started on the loop's next turn: the calls made on this turn join the first batch.
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[Call] = []
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[1].done()]
                self._waiting = []
                if not batch:  # every caller went away
                    continue
                outcomes = await run_in_threadpool(self._run, [arg for arg, _ in batch])
                for (_, future), (result, error) in zip(batch, outcomes, strict=True):
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
            for _, future in batch + self._waiting:
                future.cancel()
            self._waiting = []

    def _run(self, args: list[A]) -> list[Outcome]:
        """In the pool: the futures stay untouched here, they are the loop's."""
        try:
            results = self._many(args)
            if len(results) != len(args):
                raise RuntimeError(f"{self._many!r} answered {len(results)} of {len(args)} calls")
        except Exception as error:
            if len(args) == 1:
                return [(None, error)]
            return [outcome for arg in args for outcome in self._run([arg])]  # whose is it?
        return [(result, None) for result in results]
