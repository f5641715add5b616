"""Configuration of the notifier service."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from services.common.settings import (
    DEV_NOTIFIER_TOKEN,
    ServiceSettings,
    blank_is_unset,
    require_secret,
)
from services.notifier.schemas import Mentions

_ROUTE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*=.+")


class Settings(ServiceSettings):
    """Every variable is documented in `.env.example`."""

    port: int = Field(
        default=8002,
        ge=1,
        le=65535,
        description="HTTP port (NOTIFIER_PORT).",
        validation_alias="NOTIFIER_PORT",
    )
    discord_webhook_url: SecretStr | None = Field(
        default=None, description="Discord webhook; unset means disabled mode (logged, not sent)."
    )
    discord_webhook_url_critical: SecretStr | None = Field(
        default=None, description="Webhook for critical messages; default webhook when unset."
    )
    discord_webhook_url_warning: SecretStr | None = Field(
        default=None, description="Webhook for warning messages; default webhook when unset."
    )
    discord_critical_role_id: str | None = Field(
        default=None,
        pattern=r"^\d{1,25}$",
        description="Role mentioned by critical messages (when DISCORD_MENTIONS names none).",
    )
    mentions: Annotated[dict[str, Mentions], NoDecode] = Field(
        default_factory=dict,
        validation_alias="DISCORD_MENTIONS",
        description='Severity -> who it pings, JSON: {"critical": {"roles": ["<role id>"], '
        '"users": ["<user id>"]}, "warning": {}}; nothing else is ever pinged.',
    )
    routes: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        validation_alias="DISCORD_WEBHOOK_ROUTES",
        description='Alerts to other webhooks by label, JSON, tried in order: {"team=ml": '
        '"<webhook url>", "severity=critical": "<webhook url>"}; unmatched alerts take the '
        "severity webhooks, then DISCORD_WEBHOOK_URL.",
    )
    notifier_token: SecretStr | None = Field(
        default=None, description="Bearer token required on /alertmanager and /notify."
    )
    grafana_url: str | None = Field(default=None, description="Grafana link added to alerts.")
    runbook_base_url: str | None = Field(
        default=None,
        description="Base the alerts' relative runbook_url annotations are resolved against.",
    )
    prometheus_public_url: str | None = Field(
        default=None,
        description="Prometheus as people reach it: each alert's graph link (Prometheus's "
        "generatorURL) is moved onto it.",
    )
    alertmanager_public_url: str | None = Field(
        default=None,
        description="Alertmanager as people reach it, for the prefilled silence links "
        "(default: the externalURL Alertmanager sends).",
    )
    digest_hour: int | None = Field(
        default=None,
        ge=0,
        le=23,
        validation_alias="NOTIFIER_DIGEST_HOUR",
        description="Hour (UTC) of the daily model-health digest, about the 24 hours before "
        "it; unset: no daily digest (the CLI still sends one on demand).",
    )
    digest_check_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias="NOTIFIER_DIGEST_CHECK_S",
        description="How often the notifier checks whether the day's digest is due.",
    )
    discord_timeout_s: float = Field(default=10.0, gt=0, description="Per Discord request.")
    delivery_lease_s: float = Field(
        validation_alias="NOTIFIER_LEASE_S",
        default=30.0,
        gt=0,
        description="How long a claimed message is reserved for its sender before another "
        "replica may take it over (a crashed sender's messages wait this long).",
    )
    delivery_poll_s: float = Field(
        validation_alias="NOTIFIER_POLL_S",
        default=1.0,
        gt=0,
        description="Idle outbox poll interval (other replicas, retries).",
    )
    retry_base_s: float = Field(
        validation_alias="NOTIFIER_RETRY_BASE_S",
        default=1.0,
        gt=0,
        description="First backoff after a failure.",
    )
    retry_max_s: float = Field(
        validation_alias="NOTIFIER_RETRY_MAX_S",
        default=60.0,
        gt=0,
        description="Longest backoff between tries.",
    )
    config_error_retry_s: float = Field(
        validation_alias="NOTIFIER_CONFIG_ERROR_RETRY_S",
        default=60.0,
        gt=0,
        description="Retry pause after Discord says the webhook is invalid.",
    )
    dedup_window_s: float = Field(
        validation_alias="NOTIFIER_DEDUP_WINDOW_S",
        default=3600.0,
        ge=0,
        description="The same alert (group, fingerprint, status, start) is posted once in this "
        "window; keep it below Alertmanager's repeat_interval so reminders still go out.",
    )
    embed_description_max: int = Field(
        validation_alias="NOTIFIER_EMBED_DESCRIPTION_MAX",
        default=1024,
        ge=64,
        le=4096,
        description="Characters of summary + description per alert embed (Discord allows 4096).",
    )
    max_pending_per_caller: int = Field(
        validation_alias="NOTIFIER_MAX_PENDING_PER_CALLER",
        default=500,
        ge=1,
        description="Messages one caller (route and client address) may have waiting for "
        "Discord in each severity lane (critical, warning, info); past it, 429 with "
        "Retry-After. A request is judged before it is queued, then taken whole.",
    )
    outbox_retention_days: float = Field(
        validation_alias="NOTIFIER_RETENTION_DAYS",
        default=7.0,
        gt=0,
        description="Delivered messages are kept this long, then pruned.",
    )
    stats_interval_s: float = Field(
        validation_alias="NOTIFIER_STATS_INTERVAL_S",
        default=5.0,
        gt=0,
        description="How often queue depth and oldest age are recomputed.",
    )

    @field_validator(
        "discord_webhook_url",
        "discord_webhook_url_critical",
        "discord_webhook_url_warning",
        "discord_critical_role_id",
        "notifier_token",
        "grafana_url",
        "runbook_base_url",
        "prometheus_public_url",
        "alertmanager_public_url",
        "digest_hour",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return blank_is_unset(value)

    @field_validator("mentions", "routes", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("routes")
    @classmethod
    def _routes_name_a_label(cls, routes: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in routes:
            if not _ROUTE.fullmatch(name):
                raise ValueError(f"route {name!r} must be label=value (e.g. team=ml)")
        return routes

    @model_validator(mode="after")
    def _token_is_a_real_secret(self) -> Settings:
        token = self.notifier_token.get_secret_value() if self.notifier_token else None
        if self.dev_mode and not token:
            self.notifier_token = SecretStr(DEV_NOTIFIER_TOKEN)
            return self
        require_secret("NOTIFIER_TOKEN", token, dev_mode=self.dev_mode)
        return self

    def webhook_for(self, route: str) -> str | None:
        """The webhook URL of a route (a DISCORD_WEBHOOK_ROUTES name, "critical", "warning" or
        "default"), falling back to the default webhook."""
        specific = {
            "critical": self.discord_webhook_url_critical,
            "warning": self.discord_webhook_url_warning,
            **self.routes,
        }.get(route)
        chosen = specific or self.discord_webhook_url
        return chosen.get_secret_value() if chosen else None

    def mentions_by_severity(self) -> dict[str, Mentions]:
        """DISCORD_MENTIONS, with DISCORD_CRITICAL_ROLE_ID for critical when it names none."""
        mentions = dict(self.mentions)
        if self.discord_critical_role_id and "critical" not in mentions:
            mentions["critical"] = Mentions(roles=(self.discord_critical_role_id,))
        return mentions

    @property
    def enabled(self) -> bool:
        """Whether messages are actually sent to Discord."""
        return self.discord_webhook_url is not None


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
