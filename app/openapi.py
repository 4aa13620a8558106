"""Error responses in the OpenAPI schema, each with examples of what the server answers.

Routes declare their domain errors with `errors(...)`, whose examples are the bodies of the
exceptions the code raises (app.errors), and a 413 with `too_large(...)`. `complete` then
finishes FastAPI's schema: every 422 also gets examples of the validation errors that
operation can answer (a body that is not JSON, a parameter of the wrong type, an unknown
genre, a query parameter the route does not take), and where the route declared domain 422s
too, a schema admitting both shapes. Every operation can answer a 422: any of them refuses
query parameters it does not take.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition

from app.errors import DomainError, unknown_genre, unknown_parameter
from app.schemas import ErrorBody

Documented = dict[str, Any]
VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}
# Starlette's answer to a body over the limit: plain text when Content-Length already says
# so, FastAPI's JSON when the limit is crossed while the body is read.
CONTENT_TOO_LARGE = "Content Too Large"


def errors(description: str, *raised: DomainError) -> Documented:
    """A documented error response whose body is an ErrorBody, one example per error."""
    examples = {error.error: {"summary": error.detail, "value": error.body()} for error in raised}
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"examples": examples}},
    }


def too_large(description: str) -> Documented:
    return {
        "description": description,
        "content": {
            "text/plain": {"example": CONTENT_TOO_LARGE},
            "application/json": {"example": {"detail": CONTENT_TOO_LARGE}},
        },
    }


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the validation examples to every 422 (idempotent: FastAPI keeps the schema it
    built, and this runs on it once per call of `app.openapi`)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            invalid = responses.setdefault("422", {"description": "Validation Error"})
            invalid.setdefault("content", {}).setdefault("application/json", {}).setdefault(
                "schema", VALIDATION
            )
            _validation(operation, invalid)
    # FastAPI defines these only where some route declared a parameter or a body.
    definitions = schema.setdefault("components", {}).setdefault("schemas", {})
    definitions.setdefault("ValidationError", validation_error_definition)
    definitions.setdefault("HTTPValidationError", validation_error_response_definition)
    return schema


def _validation(operation: dict[str, Any], response: Documented) -> None:
    content = response.setdefault("content", {}).setdefault("application/json", {})
    examples = content.setdefault("examples", {})
    declared = content.get("schema", VALIDATION)
    if declared != VALIDATION and "anyOf" not in declared:  # domain 422s: both shapes come back
        content["schema"] = {"anyOf": [VALIDATION, declared]}
    parameters = operation.get("parameters", [])
    if "requestBody" in operation:
        # FastAPI's answer to the body `nope`: the position and the parser's message, no input.
        error = {"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "input": {}}
        error["ctx"] = {"error": "invalid literal, expected 'null'"}
        examples.setdefault("json_invalid", _invalid("A body that is not JSON", error))
    integer = next((p for p in parameters if _is_integer(p.get("schema", {}))), None)
    if integer is not None:
        message = "Input should be a valid integer, unable to parse string as an integer"
        error = {
            "type": "int_parsing",
            "loc": [integer["in"], integer["name"]],
            "msg": message,
            "input": "abc",
        }
        examples.setdefault("int_parsing", _invalid(f"{integer['name']} is not an integer", error))
    if any(p["name"] == "genre" for p in parameters):
        examples.setdefault("unknown_genre", _invalid("An unknown genre", unknown_genre("Comdy")))
    accepted = [p["name"] for p in parameters if p["in"] == "query"]
    error = unknown_parameter("q", "toy story", accepted)
    examples.setdefault("extra_forbidden", _invalid("A query parameter this route does not take", error))


def _invalid(summary: str, error: dict[str, Any]) -> Documented:
    """An example of a 422 from validation (app.errors renders it unchanged)."""
    return {"summary": summary, "value": {"detail": [error]}}


def _is_integer(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(s.get("type") == "integer" for s in schema.get("anyOf", []))
