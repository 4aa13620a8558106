"""Per-key asyncio locks, for coalescing concurrent work on the same key."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """`async with locks(key):` admits one task per key at a time.

    Used so that concurrent first requests for one user do not each read their feedback and
    compute their ranking: the first computes and caches it, the others wait, then answer from
    the cache. A lock lives only while some task holds or awaits it (weak references).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: int) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock
