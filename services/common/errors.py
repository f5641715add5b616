"""One error body everywhere: `{"detail": "<readable message>"}`, plus the field errors on 422."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorBody(BaseModel):
    """What every 4xx and 5xx response carries."""

    detail: str


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


def install_error_handlers(app: FastAPI) -> None:
    """Make validation errors read as one sentence while keeping the structured list."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    _document_validation_errors(app)
