"""Sending a notification through the notifier from any service or script, kept light to import.

Services use it for their own events (a start, a model swap, a rollback); none of them imports
the notifier's package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

import httpx
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEV_NOTIFIER_TOKEN, ProjectSettings, blank_is_unset

logger = logging.getLogger(__name__)

Level = Literal["info", "success", "warning", "error", "critical"]


class ClientSettings(ProjectSettings):
    """What a sender needs; read from the environment (or `.env`) like every setting."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_webhook_url: SecretStr | None = Field(default=None, description="Direct fallback.")
    notifier_url: str | None = Field(default=None, description="The notifier service's base URL.")
    notifier_token: SecretStr | None = Field(default=None, description="Its bearer token.")
    notifier_timeout_s: float = Field(default=5.0, gt=0, description="Per request.")
    discord_critical_role_id: str | None = Field(default=None, description="Pinged on critical.")
    dev_mode: bool = False

    @field_validator(
        "discord_webhook_url",
        "notifier_url",
        "notifier_token",
        "discord_critical_role_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return blank_is_unset(value)

    def token(self) -> str | None:
        """The bearer token, with the development default in DEV_MODE."""
        if self.notifier_token:
            return self.notifier_token.get_secret_value()
        return DEV_NOTIFIER_TOKEN if self.dev_mode else None


def client_settings() -> ClientSettings | None:
    """The environment's settings, or None (logged) when they are invalid."""
    try:
        return ClientSettings()
    except ValidationError as error:
        logger.warning("notification settings invalid", extra={"error": str(error)})
        return None


async def send(
    title: str, message: str, level: Level = "info", settings: ClientSettings | None = None
) -> bool:
    """Post one notification to the notifier's `/notify`; True once it is accepted.

    Never raises: whatever sends it must not depend on the notifier being configured or up.
    """
    settings = settings or client_settings()
    if settings is None or not settings.notifier_url:
        return False
    token = settings.token()
    body = {"title": title, "message": message, "level": level}
    try:
        async with httpx.AsyncClient(timeout=settings.notifier_timeout_s) as client:
            response = await client.post(
                f"{settings.notifier_url.rstrip('/')}/notify",
                json=body,
                headers={"Authorization": f"Bearer {token}"} if token else {},
            )
    except httpx.HTTPError as error:
        logger.warning(
            "notification not sent", extra={"title": title, "error": type(error).__name__}
        )
        return False
    if response.status_code != 202:
        logger.warning(
            "notification refused", extra={"title": title, "status": response.status_code}
        )
        return False
    return True


def send_in_background(
    title: str, message: str, level: Level = "info", settings: ClientSettings | None = None
) -> asyncio.Task[bool] | None:
    """`send` in a task of the running loop; None when NOTIFIER_URL is unset."""
    settings = settings or client_settings()
    if settings is None or not settings.notifier_url:
        return None
    return asyncio.create_task(send(title, message, level, settings), name=f"notify: {title}")


def announce_start(
    service: str, version: str, settings: ClientSettings | None = None
) -> asyncio.Task[bool] | None:
    """Post "<service> started" in the background; a start-up never waits for it."""
    return send_in_background(
        f"{service} started", f"{service} is up, serving version {version}.", "info", settings
    )


async def cancel(task: asyncio.Task[bool] | None) -> None:
    """Stop a notification still in flight (shutdown must not wait for the notifier)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
