"""One error body everywhere: `{"detail": "<readable message>"}`, plus the field errors on 422.

Core code raises the domain errors below (and `DatabaseUnavailable`); the handlers that
`install_error_handlers` registers once per app are the only place they become statuses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.common.db import DatabaseUnavailable

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]
DEFAULT_UNAVAILABLE_DETAIL = "the database is unavailable: nothing was recorded, retry shortly"


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    detail: str


class NotFound(Exception):
    """What the request names does not exist; the message is the 404's detail."""


class InvalidInput(Exception):
    """The request is well-formed but cannot be accepted as it is; the message is the 422's."""


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in error.items() if key in {"loc", "msg", "type"}}
        for error in exc.errors()
    ]
    detail = "; ".join(_describe(error) for error in errors) or "invalid request"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


# What `_validation_error` answers, replacing FastAPI's default (a list under `detail`) in the
# OpenAPI document, so that clients and schema-driven tests see the real 422 body.
_VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "title": "Errors",
            "items": {"$ref": "#/components/schemas/ValidationError"},
        },
    },
}


# FastAPI answers 400 (not 422) when a JSON body cannot even be decoded, e.g. invalid UTF-8.
_UNPARSABLE_BODY = {
    "description": "The body could not be parsed.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def _document_validation_errors(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = _VALIDATION_ERROR_SCHEMA
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                content = operation.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    operation["responses"].setdefault("400", _UNPARSABLE_BODY)
                    components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _detail(status: int) -> Handler:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler


def _unavailable(detail: str, retry_after_s: int) -> Handler:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        # Our own message and the cause's class: a driver message may quote a personal row.
        logger.warning(
            "request refused: database unavailable",
            extra={"error": str(exc), "cause": type(exc.__cause__).__name__},
        )
        return JSONResponse(
            {"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after_s)}
        )

    return handler


def install_error_handlers(
    app: FastAPI,
    *,
    unavailable_detail: str = DEFAULT_UNAVAILABLE_DETAIL,
    unavailable_retry_after_s: int = 5,
) -> None:
    """Map the domain errors to statuses; validation errors read as one sentence too."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NotFound, _detail(404))
    app.add_exception_handler(InvalidInput, _detail(422))
    app.add_exception_handler(
        DatabaseUnavailable, _unavailable(unavailable_detail, unavailable_retry_after_s)
    )
    _document_validation_errors(app)
