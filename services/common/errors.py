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


def install_error_handlers(app: FastAPI) -> None:
    """Make validation errors read as one sentence while keeping the structured list."""
    app.add_exception_handler(RequestValidationError, _validation_error)
