"""Prometheus metrics: requests and latency by route, the model served, cache hits, DB errors.

A plain ASGI middleware (not BaseHTTPMiddleware, which costs a task per request) times every
request and labels it with the route template, so /users/1 and /users/2 share a series.
"""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id

access = logging.getLogger("cinerec.access")


class Metrics:
    """One registry per app, so tests and reloads never share global state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cinerec_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "cinerec_request_seconds",
            "Request latency",
            ["method", "route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.model = Gauge(
            "cinerec_model_info",
            "The bundle served (value 1)",
            ["version", "dataset"],
            registry=self.registry,
        )
        self.ranking_cache = Counter(
            "cinerec_ranking_cache_total",
            "Per-user ranking cache lookups",
            ["result"],
            registry=self.registry,
        )
        self.visitor_process = Gauge(
            "cinerec_visitor_process_up",
            "1 while a second process answers visitors (VISITOR_PROCESS), else 0",
            registry=self.registry,
        )
        self.db_errors = Counter(
            "cinerec_database_errors_total", "Feedback database errors", ["operation"], registry=self.registry
        )

        self.ranking_hits = self.ranking_cache.labels("hit")
        self.ranking_misses = self.ranking_cache.labels("miss")
        # The series of each (method, route, status) seen, so that a request does not look its
        # labels up again (a lookup costs more than the update).
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._series[(method, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def serving(self, version: str, dataset: str) -> None:
        self.model.clear()
        self.model.labels(version=version, dataset=dataset).set(1)

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Per request: a request id (the client's X-Request-ID or a new one, echoed back and put
    on every log line), the metrics, and one access-log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:64]
        current = given if given.isprintable() and given else uuid.uuid4().hex
        token = request_id.set(current)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", current.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            elapsed = time.perf_counter() - started
            self.metrics.record(method, template, status, elapsed)
            access.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={"fields": {"route": template, "status": status, "ms": round(elapsed * 1000, 2)}},
            )
            request_id.reset(token)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return metrics.response()
