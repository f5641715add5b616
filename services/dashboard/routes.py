"""HTTP routes of the dashboard besides Dash's own."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

router = APIRouter()


@router.get("/", include_in_schema=False)
@router.get("/monitoring", include_in_schema=False)
async def to_dashboard() -> RedirectResponse:
    """The dashboard lives under `/monitoring/`; its bare and root addresses lead there."""
    return RedirectResponse("/monitoring/", status_code=307)
