"""Error responses in the OpenAPI schema, each with examples of what the server answers.

Routes declare their domain errors with `errors(...)`, whose examples are built from the
exceptions the code raises (app.errors), so they read as the real answers do. `complete`
then finishes FastAPI's schema: every 422 also gets an example of a validation error for
that operation (a body that is not JSON, a parameter of the wrong type, an unknown genre),
and every 413 the two shapes a body over MAX_BODY_BYTES gets.
"""

from __future__ import annotations

from typing import Any

from app.errors import DomainError
from app.schemas import ErrorBody

Response = dict[str, Any]
VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
TOO_LARGE = "Content Too Large"


def errors(description: str, *raised: DomainError) -> Response:
    """A documented error response whose body is an ErrorBody, one example per error."""
    examples = {error.error: {"summary": error.detail, "value": body(error)} for error in raised}
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"examples": examples}},
    }


def body(error: DomainError) -> dict[str, str]:
    """The JSON the error handler answers for `error` (app.errors.install_error_handlers)."""
    return {"error": error.error, "detail": error.detail}


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the validation examples and the 413's content (idempotent: FastAPI keeps the
    schema it built, and this runs on it once per call of `app.openapi`)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                _validation(operation, responses["422"])
            if "413" in responses:
                responses["413"]["content"] = {
                    "text/plain": {"example": TOO_LARGE},
                    "application/json": {"example": {"detail": TOO_LARGE}},
                }
    return schema


def _validation(operation: dict[str, Any], response: Response) -> None:
    content = response.setdefault("content", {}).setdefault("application/json", {})
    examples = content.setdefault("examples", {})
    if "schema" not in content:  # declared with domain errors only: both shapes can come back
        content["schema"] = {"anyOf": [VALIDATION, ERROR_BODY]}
    elif content["schema"] != VALIDATION and VALIDATION not in content["schema"].get("anyOf", []):
        content["schema"] = {"anyOf": [VALIDATION, content["schema"]]}
    parameters = operation.get("parameters", [])
    if "requestBody" in operation:
        # FastAPI's answer to the body `nope`: the position and the parser's message, no input.
        decode = {"error": "invalid literal, expected 'null'"}
        invalid = _invalid(
            "A body that is not JSON", ("body", 0), "json_invalid", "JSON decode error", {}, decode
        )
        examples.setdefault("json_invalid", invalid)
    integer = next((p for p in parameters if _is_integer(p.get("schema", {}))), None)
    if integer is not None:
        message = "Input should be a valid integer, unable to parse string as an integer"
        where = (integer["in"], integer["name"])
        invalid = _invalid(f"{integer['name']} is not an integer", where, "int_parsing", message, "abc")
        examples.setdefault("int_parsing", invalid)
    if any(p["name"] == "genre" for p in parameters):
        message = "unknown genre 'Comdy'; GET /genres lists the catalog's genres"
        invalid = _invalid("An unknown genre", ("query", "genre"), "unknown_genre", message, "Comdy")
        examples.setdefault("unknown_genre", invalid)


def _invalid(
    summary: str, loc: tuple[str, int | str], kind: str, message: str, given: Any, ctx: dict | None = None
) -> Response:
    """An example of a 422 from FastAPI's validation (app.errors renders it unchanged)."""
    error = {"type": kind, "loc": list(loc), "msg": message, "input": given} | ({"ctx": ctx} if ctx else {})
    return {"summary": summary, "value": {"detail": [error]}}


def _is_integer(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(s.get("type") == "integer" for s in schema.get("anyOf", []))
