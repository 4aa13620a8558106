"""Visitors' answers (POST /recommendations) computed in a second process.

A visitor's fold-in and ranking is compiled work that releases the interpreter lock, but
in the thread pool everything around it (reading the batch, building and encoding the cards)
still takes turns at one lock with the event loop. Under load the loop then waits for the
worker and the worker for the loop: in one process new visitors' requests reached ~0.6 of
/health's throughput, in a second process ~0.8 (README, Under load).

The child (`python -m app.services.visitor_process BUNDLE_DIR FD`) reads the catalog and the
ranker of the same bundle (`read_ranker_bundle`: not the users' tables or the rating model)
and answers batches of visitors over its end of a Unix socket pair. Both ways the messages
are length-prefixed frames: a batch as JSON (orjson), each answer as its kind and bytes (the
answer's JSON, or the error that is answered instead); never pickle.

The server keeps the thread pool for visitors whenever the child is not there to answer:
while it starts, if it cannot start, if it stops or hangs (its batch is then answered again
in the server, and a new child is started), and after `close`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from app.errors import DomainError
from app.metrics import Metrics
from app.services.catalog import Catalog, Filters
from app.services.concurrency import Args, Outcome, run_each, through_thread_pool

log = logging.getLogger("cinerec")

BATCH = struct.Struct("<I")  # a batch: the length of its JSON
ANSWER = struct.Struct("<BI")  # an answer: its kind and length
OK, REFUSED, FAILED = 0, 1, 2  # answer kinds: the JSON answered; a DomainError's; another error

START_SECONDS = 300.0  # for the child to read and verify the bundle (a large one takes a while)
BATCH_SECONDS = 30.0  # for one batch; a child that takes longer is stopped and replaced
RESTART_SECONDS = 30.0  # at least this long between starts, so a child that keeps dying costs little


class WorkerGone(RuntimeError):
    """The child did not start, stopped, or stopped answering."""


def package_root() -> str:
    """The directory that holds the `app` package, for the child's import path."""
    return str(Path(__file__).resolve().parents[2])


class VisitorWorker:
    """One child process and the server's end of its socket pair."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self._sock = sock
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @classmethod
    def spawn(cls, bundle_dir: Path) -> VisitorWorker:
        """Start a child on the bundle at `bundle_dir` (a version's own directory, not
        `current`, which a later build moves); it is ready once `wait_ready` returns."""
        path = os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")]))
        try:
            ours, theirs = socket.socketpair()
            with theirs:
                process = subprocess.Popen(
                    [sys.executable, "-m", __name__, str(bundle_dir), str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    env={**os.environ, "PYTHONPATH": path},
                )
        except OSError as exc:  # no process could be started (no executable, no memory, ...)
            raise WorkerGone(f"it could not be started ({exc})") from None
        return cls(process, ours)

    def wait_ready(self, version: str, timeout: float = START_SECONDS) -> None:
        """Block until the child says it serves bundle `version` (raises WorkerGone if it
        exits, says something else, or takes longer than `timeout` seconds)."""
        self._sock.settimeout(timeout)
        try:
            kind, said = read_answer(self._sock.recv)
        except (OSError, EOFError) as exc:
            self.stop()
            raise WorkerGone(f"it did not start ({self.exit_description(exc)})") from None
        if kind != OK or said != version.encode():
            self.stop()
            raise WorkerGone(f"it serves {said!r}, not bundle {version}")
        self._sock.setblocking(False)

    def exit_description(self, cause: BaseException) -> str:
        code = self.process.poll()
        return f"exit code {code}" if code is not None else type(cause).__name__

    async def answer(self, calls: list[Args]) -> list[Outcome]:
        """One batch of visitors, `(rated, k, filters)` each, answered by the child."""
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(sock=self._sock)
        reader, writer = self._streams
        batch = orjson.dumps([encode_call(*args, **kwargs) for args, kwargs in calls])
        try:
            async with asyncio.timeout(BATCH_SECONDS):
                writer.write(BATCH.pack(len(batch)) + batch)
                await writer.drain()
                outcomes = []
                for _ in calls:
                    kind, length = ANSWER.unpack(await reader.readexactly(ANSWER.size))
                    outcomes.append(decode_answer(kind, await reader.readexactly(length)))
                return outcomes
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            raise WorkerGone(f"it stopped answering ({self.exit_description(exc)})") from None

    def abandon(self) -> None:
        """Kill the child and close the socket, without waiting (for a cancelled caller)."""
        self.process.kill()
        self._close_socket()

    def stop(self, grace: float = 5.0) -> None:
        """Close the socket (the child exits when it reads its end), then wait for the child;
        one that has not exited within `grace` seconds is killed. Blocking: for the thread pool."""
        self._close_socket()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _close_socket(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._sock.close()


class VisitorProcess:
    """The Batcher hop (app.services.concurrency.Hop) that takes visitors' batches to a child
    process, or to the thread pool whenever no child is there to answer: until the child
    started by `start` is ready (it does not hold up a start-up or a reload), and after it
    could not start, stopped or was closed."""

    def __init__(self, bundle_dir: Path, version: str, metrics: Metrics | None = None) -> None:
        self._bundle_dir = bundle_dir.resolve()
        self._version = version
        self._metrics = metrics
        self._worker: VisitorWorker | None = None  # the child that answers
        self._starting: VisitorWorker | None = None  # a child being started
        self._start_task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._lock = asyncio.Lock()  # held by a batch at the child, and by `close`
        self._closed = False
        self._gave_up = False  # a child could not start

    def start(self) -> None:
        """Start a child in the background (on the event loop); `ready` waits for it."""
        self._started_at = time.monotonic()
        self._start_task = asyncio.create_task(self._start())

    async def ready(self) -> bool:
        """Wait for the child being started, if any; whether a child answers visitors."""
        if self._start_task is not None:
            await asyncio.shield(self._start_task)
        return self._worker is not None

    @property
    def pid(self) -> int | None:
        """The child's process id while it answers visitors, else None."""
        return self._worker.process.pid if self._worker is not None else None

    async def __call__(self, work: Callable[..., Any], calls: list[Args]) -> list[Outcome]:
        worker = self._worker
        if worker is None:
            self._start_again()
        else:
            async with self._lock:
                if self._worker is worker:  # not closed meanwhile
                    try:
                        return await worker.answer(calls)
                    except asyncio.CancelledError:
                        # The loop is shutting down mid-batch: the child's answers to it would
                        # be read as the next batch's, so this child answers no more.
                        self._worker = None
                        worker.abandon()
                        raise
                    except WorkerGone as exc:
                        pid = worker.process.pid
                        log.error("visitor process %d: %s; answering visitors in this process", pid, exc)
                        self._worker = None
                        self._set_up(False)
                        await run_in_threadpool(worker.stop, 0)  # it may hang: no grace
                        self._start_again()
        return await through_thread_pool(work, calls)

    def _start_again(self) -> None:
        """A new child in the background, after one that stopped: not after one that could
        not start (that fails the same way again), nor sooner than RESTART_SECONDS after the
        last start (a child that keeps dying costs little)."""
        if self._closed or self._gave_up or self._start_task is not None:
            return
        if time.monotonic() - self._started_at >= RESTART_SECONDS:
            self.start()

    async def _start(self) -> None:
        try:
            try:
                worker = self._starting = await run_in_threadpool(VisitorWorker.spawn, self._bundle_dir)
                await run_in_threadpool(worker.wait_ready, self._version)
            except WorkerGone as exc:
                if not self._closed:
                    log.warning("visitor process: %s; visitors are answered in this process", exc)
                    self._gave_up = True
                return
            finally:
                self._starting = None
            if self._closed:
                await run_in_threadpool(worker.stop)
                return
            self._worker = worker
            self._set_up(True)
            log.info("visitor process %d answers visitors (bundle %s)", worker.process.pid, self._version)
        finally:
            self._start_task = None

    async def close(self) -> None:
        """Stop the child once the batch it is answering (if any) is answered, and a child
        being started at once; visitors are then answered in this process. Idempotent."""
        self._closed = True
        if self._starting is not None:
            self._starting.process.kill()  # its start then fails, and it is reaped
        if self._start_task is not None:
            await asyncio.shield(self._start_task)
        async with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._set_up(False)
            await run_in_threadpool(worker.stop)

    def _set_up(self, up: bool) -> None:
        if self._metrics is not None:
            self._metrics.visitor_process.set(1 if up else 0)


# The wire format, both sides ----------------------------------------------------------------
def encode_call(rated: Mapping[int, float], k: int, filters: Filters) -> list[Any]:
    return [list(rated.items()), k, filters.genre, filters.year_from, filters.year_to, filters.exclude]


def decode_call(call: list[Any]) -> tuple[dict[int, float], int, Filters]:
    pairs, k, genre, year_from, year_to, exclude = call
    return dict(pairs), k, Filters(genre, year_from, year_to, tuple(exclude))


def encode_answer(kind: int, payload: bytes) -> bytes:
    return ANSWER.pack(kind, len(payload)) + payload


def decode_answer(kind: int, payload: bytes) -> Outcome:
    if kind == OK:
        return payload, None
    error = orjson.loads(payload)
    if kind == REFUSED:
        refused = DomainError(error["detail"])
        refused.status_code, refused.error = error["status"], error["error"]
        return None, refused
    return None, RuntimeError(f"visitor process: {error['detail']}")


def read_answer(read: Callable[[int], bytes]) -> tuple[int, bytes]:
    kind, length = ANSWER.unpack(read_exactly(read, ANSWER.size))
    return kind, read_exactly(read, length)


def read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """`size` bytes from `read` (a blocking socket's recv, a file's read), however many
    calls that takes; EOFError if the other end closes first."""
    data = bytearray()
    while len(data) < size:
        chunk = read(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the socket")
        data += chunk
    return bytes(data)


# The child ----------------------------------------------------------------------------------
def answer_each(work: Callable[..., bytes], calls: list[list[Any]]) -> bytes:
    """The encoded answers to one batch, in order: each visitor's JSON, or the error that
    is answered instead."""
    outcomes = run_each(work, [(decode_call(call), {}) for call in calls])
    return b"".join(encode_outcome(result, error) for result, error in outcomes)


def encode_outcome(result: bytes | None, error: BaseException | None) -> bytes:
    if error is None:
        return encode_answer(OK, result or b"")
    if isinstance(error, DomainError):
        body = {"status": error.status_code, "error": error.error, "detail": error.detail}
        return encode_answer(REFUSED, orjson.dumps(body))
    # The server answers it as any unexpected error.
    return encode_answer(FAILED, orjson.dumps({"detail": repr(error)}))


def main(bundle_dir: str, fd: str) -> None:
    # Ctrl-C at a terminal reaches the whole process group: the server shuts down and closes
    # the socket, and that is what ends the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as app.main: one thread per process
    from app.services.recommender import VisitorRanker
    from training.bundle import BundleError, read_ranker_bundle

    sock = socket.socket(fileno=int(fd))
    stream = sock.makefile("rb")
    try:
        bundle = read_ranker_bundle(Path(bundle_dir))
    except BundleError as exc:  # the server logs that the child did not start
        sys.exit(f"cinerec visitor process: {exc}")
    visitors = VisitorRanker(bundle, Catalog(bundle, searchable=False))
    sock.sendall(encode_answer(OK, bundle.version.encode()))
    while True:
        try:
            (length,) = BATCH.unpack(read_exactly(stream.read, BATCH.size))
            calls = orjson.loads(read_exactly(stream.read, length))
            sock.sendall(answer_each(visitors.visitor_answer, calls))
        except (EOFError, OSError):  # the server closed its end, or went away
            return


if __name__ == "__main__":
    main(*sys.argv[1:])
