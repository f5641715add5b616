"""HTTP routes of the dashboard besides Dash's own."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

router = APIRouter()


@router.get("/", include_in_schema=False)
@router.get("/monitoring", include_in_schema=False)
async def to_dashboard(request: Request) -> RedirectResponse:
    """The dashboard lives under `/monitoring/`; its bare and root addresses lead there.

    The query is kept: `?lang=` chooses the page's language.
    """
    query = request.url.query
    return RedirectResponse("/monitoring/" + (f"?{query}" if query else ""), status_code=307)
