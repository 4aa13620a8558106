"""Query parameters, error documentation and the JSON body parsing shared by the routers."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Coroutine, Hashable, MutableMapping
from typing import Annotated, Any, get_args, get_origin

import orjson
from fastapi import Depends, Query, Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError, create_model
from starlette.datastructures import QueryParams

from app.errors import (
    RatingOffScale,
    Unauthorized,
    UnknownMovie,
    UnknownMovies,
    unknown_genre,
    unknown_parameter,
)
from app.openapi import errors, too_large
from app.services.catalog import Catalog, Filters

KQuery = Annotated[int, Query(ge=1, le=100, description="How many items to return (1-100).", examples=[10])]
GenreQuery = Annotated[
    str | None,
    Query(
        max_length=100,
        description="Only movies of this genre (case-insensitive); an unknown genre is a 422 (see /genres).",
        examples=["Comedy"],
    ),
]
YearFrom = Annotated[
    int | None,
    Query(ge=1800, le=2200, description="Only movies released in or after this year.", examples=[1990]),
]
YearTo = Annotated[
    int | None,
    Query(ge=1800, le=2200, description="Only movies released in or before this year.", examples=[1999]),
]
ExcludeQuery = Annotated[
    list[Annotated[int, Field(ge=0, le=2**63 - 1)]] | None,
    Query(
        max_length=1000, description="Movie ids never to return (repeat the parameter).", examples=[[1196]]
    ),
]

# The documented error responses (their examples: app.openapi). A body that is not JSON is a
# 422 like any other invalid body (error type `json_invalid`).
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: errors("Unknown movie id.", UnknownMovie(999999))}
TOO_LARGE: Responses = {413: too_large("The body is larger than MAX_BODY_BYTES (default 2 MiB).")}
UNAUTHORIZED: Responses = {401: errors("API_KEYS is set and X-API-Key is missing or wrong.", Unauthorized())}
UNKNOWN_MOVIES: Responses = {
    **TOO_LARGE,
    422: errors(
        "Invalid body (not JSON, a field missing or of the wrong type, an unknown genre), movie ids "
        "not in the catalog, or ratings off the dataset's scale (/health gives it).",
        UnknownMovies([999999]),
        RatingOffScale([(1, 9.0)], (0.5, 5.0), stored=False),
    ),
}


async def list_filters(
    genre: GenreQuery = None, year_from: YearFrom = None, year_to: YearTo = None, exclude: ExcludeQuery = None
) -> Filters:
    """The filters a ranked list accepts, applied before the cut to k."""
    return Filters(genre, year_from, year_to, tuple(exclude or ()))


FiltersDep = Annotated[Filters, Depends(list_filters)]


def check_genre(catalog: Catalog, genre: str | None, where: str = "query") -> None:
    """An unknown genre is a 422 in the shape of FastAPI's validation errors (a typo would
    otherwise answer an empty list). Called where an answer is computed: a kept answer was
    made from a known genre."""
    if genre is not None and catalog.genre_name(genre) is None:
        raise RequestValidationError([unknown_genre(genre, where)])


class _OrjsonRequest(Request):
    async def json(self) -> Any:
        # orjson's decode error subclasses json's, so malformed bodies still get FastAPI's 422.
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """Request bodies parsed by orjson (a 10,000-pair prediction body: ~4 ms instead of ~9 ms),
    FastAPI's documented way to customise how a route reads its request.

    A route whose only inputs are one JSON body model and dependencies that read nothing but
    the request (`get_services`) also has a direct path: a body sent as `application/json` is
    validated by pydantic straight from its bytes (`model_validate_json`) and the endpoint
    called with it, without FastAPI's per-request body, content-type and dependency handling
    (~70 us of the event loop's time a request under load; README, Speed). A body that does
    not validate so, any other content type, and an app with dependency overrides take
    FastAPI's own path with the bytes already read, so every error answer is FastAPI's.
    GET routes whose inputs are path and query parameters have a direct path too
    (`_direct_get`).

    A query parameter the route does not take is a 422 naming it and the ones it takes, on
    every path, as FastAPI answers a query model that forbids extra fields."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        direct = _direct_call(self)
        direct_get = _direct_get(self) if self.methods == {"GET"} else None
        accepted = [
            p.alias for p in get_flat_params(self.dependant) if isinstance(p.field_info, params.Query)
        ]

        async def parse_with_orjson(request: Request) -> Response:
            request = _OrjsonRequest(request.scope, request.receive)
            if request.scope["query_string"]:
                _refuse_unknown(request.query_params, accepted)
            if direct_get is not None:
                answer = await direct_get(request, b"")
                if answer is not None:
                    return answer
            elif direct is not None and request.headers.get("content-type") == "application/json":
                # The bytes stay cached on `request` for FastAPI's path below.
                answer = await direct(request, await request.body())
                if answer is not None:
                    return answer
            return await handler(request)

        return parse_with_orjson


def _refuse_unknown(query: QueryParams, accepted: list[str]) -> None:
    unknown = [name for name in query if name not in accepted]  # each name once
    if unknown:
        raise RequestValidationError([unknown_parameter(name, query[name], accepted) for name in unknown])


Direct = Callable[[Request, bytes], Coroutine[Any, Any, Response | None]]


def _direct_call(route: APIRoute) -> Direct | None:
    """The direct path of `route` (see JSONRoute), or None where it has other inputs."""
    dependant = route.dependant
    if (
        len(dependant.body_params) != 1
        or route._embed_body_fields
        or dependant.path_params
        or dependant.query_params
        or _reads_more(dependant)
    ):
        return None
    body_name = dependant.body_params[0].name
    model = dependant.body_params[0].field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    endpoint = route.endpoint
    if not _answers_itself(endpoint):
        return None
    dependencies: list[tuple[str, Callable[[Request], Coroutine[Any, Any, Any]]]] = []
    for sub in dependant.dependencies:
        if not (sub.name and sub.call and _reads_the_request_alone(sub)):
            return None
        dependencies.append((sub.name, sub.call))

    async def call(request: Request, raw: bytes) -> Response | None:
        if getattr(request.app, "dependency_overrides", None):
            return None  # FastAPI decides which apply
        try:
            body = model.model_validate_json(raw)
        except ValidationError:
            return None
        values = {name: await dependency(request) for name, dependency in dependencies}
        answer: Response = await endpoint(**{body_name: body}, **values)
        return answer

    return call


def _direct_get(route: APIRoute) -> Direct | None:
    """The direct path of a GET `route` whose inputs are path and query parameters, and
    dependencies that read either the request alone (`get_services`) or query parameters
    alone (`list_filters`): every parameter validated by one pydantic model made from the
    route's own declarations (types, constraints, defaults), then the endpoint called. FastAPI
    solves the same inputs one by one (~100 us of the event loop a request for a user's
    recommendations; README, Under load). Parameters that do not validate so take FastAPI's
    path, so every error answer is FastAPI's."""
    dependant = route.dependant
    if dependant.body_params or _reads_more(dependant) or not _answers_itself(route.endpoint):
        return None
    params = [*dependant.path_params, *dependant.query_params]
    top = [param.name for param in params]
    by_request: list[tuple[str, Callable[[Request], Coroutine[Any, Any, Any]]]] = []
    by_query: list[tuple[str, Callable[..., Coroutine[Any, Any, Any]], list[str]]] = []
    for sub in dependant.dependencies:
        if not (sub.name and sub.call):
            return None
        if _reads_the_request_alone(sub):
            by_request.append((sub.name, sub.call))
        elif (
            inspect.iscoroutinefunction(sub.call)
            and sub.query_params
            and not (sub.body_params or sub.path_params or sub.dependencies or _reads_more(sub))
        ):
            by_query.append((sub.name, sub.call, [param.name for param in sub.query_params]))
            params += sub.query_params
        else:
            return None
    names = [param.name for param in params]
    if len(set(names)) < len(names) or any(
        param.alias != param.name or param.field_info.validation_alias is not None for param in params
    ):
        return None
    model = create_model(  # type: ignore[call-overload]
        f"{route.name}_parameters", **{p.name: (p.field_info.annotation, p.field_info) for p in params}
    )
    queried = [(p.name, _is_list(p.field_info.annotation)) for p in params if p not in dependant.path_params]
    endpoint = route.endpoint

    async def call(request: Request, _: bytes) -> Response | None:
        if getattr(request.app, "dependency_overrides", None):
            return None  # FastAPI decides which apply
        query = request.query_params
        received: dict[str, Any] = dict(request.path_params)
        for name, many in queried:  # as FastAPI reads them: lists repeated, the last value else
            if many:
                if values := query.getlist(name):
                    received[name] = values
            elif (value := query.get(name)) is not None:
                received[name] = value
        try:
            valid = model.model_validate(received).__dict__
        except ValidationError:
            return None
        arguments = {name: valid[name] for name in top}
        for name, dependency in by_request:
            arguments[name] = await dependency(request)
        for name, query_dependency, its in by_query:
            arguments[name] = await query_dependency(**{param: valid[param] for param in its})
        answer: Response = await endpoint(**arguments)
        return answer

    return call


def _reads_more(dependant: Dependant) -> bool:
    """Whether `dependant` reads anything a direct path does not give it: headers, cookies,
    the request or response objects, background tasks, security scopes."""
    return bool(
        dependant.header_params
        or dependant.cookie_params
        or dependant.request_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _reads_the_request_alone(sub: Dependant) -> bool:
    """A dependency such as `get_services`: a coroutine whose one parameter is the request."""
    return bool(
        sub.call
        and sub.request_param_name
        and inspect.iscoroutinefunction(sub.call)
        and not (sub.dependencies or sub.body_params or sub.path_params or sub.query_params)
        and len(inspect.signature(sub.call).parameters) == 1
    )


def _answers_itself(endpoint: Callable[..., Any]) -> bool:
    """A coroutine that returns a Response (FastAPI would build the answer from anything else)."""
    returns = inspect.signature(endpoint, eval_str=True).return_annotation
    is_response = isinstance(returns, type) and issubclass(returns, Response)
    return inspect.iscoroutinefunction(endpoint) and is_response


def _is_list(annotation: Any) -> bool:
    """`list[...]`, or `list[...] | None`: a parameter that may be repeated."""
    return get_origin(annotation) is list or any(get_origin(arg) is list for arg in get_args(annotation))


def rendered(answers: MutableMapping[Hashable, bytes] | None, key: Hashable) -> Response | None:
    """The answer already rendered for the same request, if `answers` (Services.rendered)
    keeps it; None otherwise, and always when `answers` is None (nothing kept for it)."""
    body = answers.get(key) if answers is not None else None
    return None if body is None else Response(body, media_type="application/json")


def render(content: Any, answers: MutableMapping[Hashable, bytes] | None, key: Hashable) -> Response:
    """`content`, built by the services from plain Python values in the shape of the route's
    response model, encoded by orjson and kept in `answers` (when given) for the next
    identical request. Not validated against the model on every request, as FastAPI would
    (~65 us for ten cards against ~5 us): the tests check each route's answers against it."""
    return keep(orjson.dumps(content), answers, key)


def encoded(work: Callable[[], Any]) -> bytes:
    """`work()` encoded by orjson, for work the thread pool runs: the answer is encoded where
    its cards were just built, and freed there. On the event loop, reading them cold from
    another thread's cache, the encoding alone took 13-21 us for a visitor's ten cards against
    ~2 us in a tight loop (README, Under load)."""
    return orjson.dumps(work())


def keep(body: bytes, answers: MutableMapping[Hashable, bytes] | None, key: Hashable) -> Response:
    """An encoded answer (see `render`), kept in `answers` (when given) and answered."""
    if answers is not None:
        with contextlib.suppress(ValueError):  # larger than the whole budget: not kept
            answers[key] = body
    return Response(body, media_type="application/json")
