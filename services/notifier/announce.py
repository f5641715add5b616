"""A service announces its start through the notifier, in the background, never delaying it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from pydantic import ValidationError

from services.notifier.client_settings import ClientSettings

logger = logging.getLogger(__name__)


def announce_start(
    service: str, version: str, settings: ClientSettings | None = None
) -> asyncio.Task[None] | None:
    """Post "<service> started" to the notifier in a task; None when NOTIFIER_URL is unset.

    Never raises: a start-up must not depend on the notifier being configured or reachable.
    """
    try:
        settings = settings or ClientSettings()
    except ValidationError as error:
        logger.warning("start announcement skipped: invalid settings", extra={"error": str(error)})
        return None
    if not settings.notifier_url:
        return None
    return asyncio.create_task(
        _announce(settings, service, version), name=f"{service}-start-announcement"
    )


async def _announce(settings: ClientSettings, service: str, version: str) -> None:
    token = settings.token()
    body = {
        "title": f"{service} started",
        "message": f"{service} is up, serving version {version}.",
        "level": "info",
    }
    try:
        async with httpx.AsyncClient(timeout=settings.notifier_timeout_s) as client:
            response = await client.post(
                f"{str(settings.notifier_url).rstrip('/')}/notify",
                json=body,
                headers={"Authorization": f"Bearer {token}"} if token else {},
            )
    except httpx.HTTPError as error:
        logger.warning("start announcement not sent", extra={"error": type(error).__name__})
        return
    if response.status_code != 202:
        logger.warning("start announcement refused", extra={"status": response.status_code})


async def cancel_announcement(task: asyncio.Task[None] | None) -> None:
    """Stop an announcement still in flight (shutdown must not wait for the notifier)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
