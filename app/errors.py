"""Domain errors raised by services and the one handler that renders them as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class DomainError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, str]:
        """The JSON answered for it (and shown as its example in the OpenAPI schema)."""
        return {"error": self.error, "detail": self.detail}


class UnknownMovie(DomainError):
    status_code = 404
    error = "unknown_movie"

    def __init__(self, movie_id: int):
        super().__init__(f"movie {movie_id} is not in the catalog")
        self.movie_id = movie_id


class UnknownMovies(DomainError):
    status_code = 422
    error = "unknown_movies"

    def __init__(self, movie_ids: list[int]):
        shown = ", ".join(map(str, movie_ids[:10]))
        super().__init__(f"movies not in the catalog: {shown}")


class MoviesNotFound(DomainError):
    status_code = 404
    error = "unknown_movies"

    def __init__(self, movie_ids: list[int]):
        shown = ", ".join(map(str, movie_ids[:10]))
        super().__init__(f"movies not in the catalog: {shown}; nothing was stored")


class RatingOffScale(DomainError):
    status_code = 422
    error = "rating_off_scale"

    def __init__(self, offending: list[tuple[int, float]], scale: tuple[float, float], stored: bool = True):
        shown = ", ".join(f"movie {m}: {r:g}" for m, r in offending[:10])
        note = "; nothing was stored" if stored else ""
        super().__init__(f"ratings must be between {scale[0]:g} and {scale[1]:g} ({shown}){note}")

    @classmethod
    def check(
        cls, ratings: Iterable[tuple[int, float]], scale: tuple[float, float], stored: bool = True
    ) -> None:
        """Raise naming every (movie, rating) of `ratings` outside the scale, if any is."""
        low, high = scale
        if off := [(movie, rating) for movie, rating in ratings if not low <= rating <= high]:
            raise cls(off, scale, stored)


class NotRated(DomainError):
    status_code = 404
    error = "not_rated"

    def __init__(self, user_id: int, movie_id: int):
        super().__init__(f"user {user_id} has no stored rating of movie {movie_id}")


class DatabaseUnavailable(DomainError):
    status_code = 503
    error = "database_unavailable"

    def __init__(self, detail: str = "the ratings database is unavailable; nothing was stored, try again"):
        super().__init__(detail)


class Unauthorized(DomainError):
    status_code = 401
    error = "unauthorized"

    def __init__(self, detail: str = "a valid X-API-Key header is required for this endpoint"):
        super().__init__(detail)


class BundleRejected(DomainError):
    status_code = 409
    error = "bundle_rejected"


class ModelNotReady(DomainError):
    status_code = 503
    error = "model_not_ready"


def unknown_genre(genre: str, where: str = "query") -> dict[str, Any]:
    """A genre the catalog does not have, as one of FastAPI's validation errors (a 422 whose
    `loc` names the field, like every other bad parameter)."""
    message = f"unknown genre {genre!r}; GET /genres lists the catalog's genres"
    return {"type": "unknown_genre", "loc": [where, "genre"], "msg": message, "input": genre}


def unknown_parameter(name: str, value: str, accepted: list[str]) -> dict[str, Any]:
    """A query parameter the route does not take, as one of FastAPI's validation errors (a
    misspelt or misplaced parameter would otherwise be ignored without a word: `?limit=5` on a
    route that takes `k` answering ten items)."""
    takes = f"this route takes {', '.join(accepted)}" if accepted else "this route takes no query parameters"
    message = f"unknown query parameter {name!r}; {takes}"
    return {"type": "extra_forbidden", "loc": ["query", name], "msg": message, "input": value}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.body())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad input back and fails (a 500) when that input is
        # bytes that are not UTF-8; echo those as text with replacement characters instead.
        errors = [
            {**error, "input": error["input"].decode("utf-8", "replace")}
            if isinstance(error.get("input"), bytes)
            else error
            for error in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
