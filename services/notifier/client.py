"""Send a notification from any script or service, the way the original guide does.

    from services.notifier.client import notifier, alert_deployment_success
    notifier.send_alert(title="Drift detected", message="...", level="warning")
    alert_deployment_success("1.4.0")

It goes through the notifier service when NOTIFIER_URL is set and answers (queued durably,
retried, de-duplicated), and straight to DISCORD_WEBHOOK_URL otherwise. With neither set it
runs disabled: `notifier.enabled` is False and messages are only logged.

CLI: `python -m services.notifier.client test-alert --help`; `… digest` queues the daily
model-health digest now (`--print`: only prints it).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from services.common.cli import run_cli
from services.common.notify import ClientSettings
from services.notifier.discord import (
    Delivered,
    Outcome,
    RateLimited,
    Transient,
    classify,
    confirmed_url,
    protect_http_logs,
    redact,
)
from services.notifier.formatting import Presentation, notification_message
from services.notifier.schemas import Level, Mentions, Notification

logger = logging.getLogger(__name__)

_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8, jitter=0.5)


def _discord_wait(state: RetryCallState) -> float:
    """Honour a 429's retry_after; otherwise exponential backoff with jitter."""
    outcome = state.outcome.result() if state.outcome else None
    if isinstance(outcome, RateLimited):
        return outcome.retry_after_s
    return float(_BACKOFF(state))


def _worth_retrying(outcome: Outcome) -> bool:
    return isinstance(outcome, RateLimited | Transient)


class DiscordNotifier:
    """Sends notifications; never raises for network trouble, returns whether it was sent."""

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        notifier_url: str | None = None,
        token: str | None = None,
        timeout_s: float = 5.0,
        critical_role_id: str | None = None,
        attempts: int = 4,
    ) -> None:
        self.webhook_url = webhook_url or None
        self.notifier_url = notifier_url.rstrip("/") if notifier_url else None
        self._token = token
        self._timeout_s = timeout_s
        critical = {"critical": Mentions(roles=(critical_role_id,))} if critical_role_id else {}
        self._presentation = Presentation(mentions=critical)
        self._attempts = attempts
        protect_http_logs()

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> DiscordNotifier:
        """A notifier configured from `ClientSettings`."""
        webhook = settings.discord_webhook_url
        return cls(
            webhook.get_secret_value() if webhook else None,
            notifier_url=settings.notifier_url,
            token=settings.token(),
            timeout_s=settings.notifier_timeout_s,
            critical_role_id=settings.discord_critical_role_id,
        )

    @property
    def enabled(self) -> bool:
        """Whether messages can go anywhere (the service or Discord)."""
        return bool(self.webhook_url or self.notifier_url)

    def __repr__(self) -> str:
        return (
            f"DiscordNotifier(webhook={redact(self.webhook_url)}, "
            f"notifier_url={self.notifier_url!r}, enabled={self.enabled})"
        )

    def send_alert(self, title: str, message: str = "", level: Level = "info") -> bool:
        """Send one notification; True once the service queued it or Discord stored it."""
        return self.deliver(title, message, level) in {"service", "discord"}

    def deliver(self, title: str, message: str = "", level: Level = "info") -> str:
        """Like `send_alert`, saying how: "service", "discord", "disabled" or "failed"."""
        notification = Notification(title=title, message=message, level=level)
        if not self.enabled:
            logger.info(
                "notifications disabled (no NOTIFIER_URL nor DISCORD_WEBHOOK_URL); not sent",
                extra={"title": title, "level": level, "notification": message[:2000]},
            )
            return "disabled"
        if self.notifier_url and self._via_service(notification):
            return "service"
        if self.webhook_url and self._direct(notification):
            return "discord"
        return "failed"

    def _via_service(self, notification: Notification) -> bool:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = httpx.post(
                f"{self.notifier_url}/notify",
                json=notification.model_dump(exclude_none=True),
                headers=headers,
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as error:
            logger.warning(
                "notifier service unreachable; falling back to Discord",
                extra={"error": type(error).__name__},
            )
            return False
        if response.status_code == 202:
            return True
        logger.warning(
            "notifier service refused the notification; falling back to Discord",
            extra={"status": response.status_code},
        )
        return False

    def _direct(self, notification: Notification) -> bool:
        assert self.webhook_url is not None
        payload = notification_message(notification, self._presentation).payload
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=_discord_wait,
            retry=retry_if_result(_worth_retrying),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        outcome = retrying(self._post_once, self.webhook_url, payload)
        if isinstance(outcome, Delivered):
            return True
        logger.error(
            "notification not delivered to Discord",
            extra={"webhook": redact(self.webhook_url), "outcome": repr(outcome)},
        )
        return False

    def _post_once(self, url: str, payload: dict[str, Any]) -> Outcome:
        try:
            response = httpx.post(confirmed_url(url), json=payload, timeout=self._timeout_s)
        except httpx.HTTPError as error:
            return Transient(type(error).__name__)
        return classify(response)


def _from_environment() -> DiscordNotifier:
    try:
        return DiscordNotifier.from_settings(ClientSettings())
    except ValidationError as error:
        logger.error(
            "notifier settings invalid; notifications disabled", extra={"error": str(error)}
        )
        return DiscordNotifier()


notifier = _from_environment()


def alert_deployment_success(version: str) -> bool:
    """Announce that `version` is deployed (the original guide's helper)."""
    return notifier.send_alert(
        title="Deployment succeeded",
        message=f"Version {version} is deployed and serving.",
        level="success",
    )


def main(argv: list[str] | None = None) -> int:
    """CLI: send a test alert or a deployment notice; exit 0 only if it was sent."""
    parser = argparse.ArgumentParser(
        prog="python -m services.notifier.client",
        description="Send a notification through the notifier service (NOTIFIER_URL) or "
        "directly to Discord (DISCORD_WEBHOOK_URL).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    test = commands.add_parser("test-alert", help="send a test notification")
    test.add_argument("--title", default="Test alert", help="notification title")
    test.add_argument(
        "--message", default="If you can read this, notifications work.", help="body text"
    )
    test.add_argument(
        "--level",
        default="info",
        choices=["info", "success", "warning", "error", "critical"],
        help="colour and routing (critical may ping a role)",
    )
    deployment = commands.add_parser("deployment", help="announce a successful deployment")
    deployment.add_argument("version", help="the version now serving")
    digest = commands.add_parser(
        "digest",
        help="queue the model-health digest of the last 24 hours in the notifier's outbox "
        "(DATABASE_URL and the notifier's settings)",
    )
    digest.add_argument("--print", action="store_true", help="only print it, queue nothing")
    args = parser.parse_args(argv)

    from services.common.logs import configure_logging

    configure_logging("WARNING")
    if args.command == "digest":
        return _digest(send=not args.print)
    if args.command == "deployment":
        how = notifier.deliver(
            "Deployment succeeded", f"Version {args.version} is deployed and serving.", "success"
        )
    else:
        how = notifier.deliver(args.title, args.message, args.level)
    explanations = {
        "service": "queued by the notifier service",
        "discord": "posted directly to Discord",
        "disabled": "not sent: no stack of `make run` is running here and neither NOTIFIER_URL "
        "(with NOTIFIER_TOKEN) nor DISCORD_WEBHOOK_URL is set",
        "failed": "not sent: the notifier service and Discord both failed (see the log; a 401 "
        "means NOTIFIER_TOKEN is not the notifier's token)",
    }
    print(explanations[how])
    return 0 if how in {"service", "discord"} else 1


def _digest(*, send: bool) -> int:
    """Print the digest, queued first when `send`; exit 1 when PostgreSQL cannot be reached."""
    import asyncio

    from services.common.db import DATABASE_ERRORS
    from services.notifier.digest import on_demand
    from services.notifier.settings import Settings

    try:
        text = asyncio.run(on_demand(Settings(), send=send))
    except DATABASE_ERRORS as error:
        print(f"not sent: the database cannot be reached ({type(error).__name__})")
        return 1
    print(text)
    print("queued in the notifier's outbox" if send else "(printed only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
