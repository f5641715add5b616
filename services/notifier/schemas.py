"""What the notifier accepts: Alertmanager's webhook (version 4) and direct notifications."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Level = Literal["info", "success", "warning", "error", "critical"]


class AlertmanagerAlert(BaseModel):
    """One alert of a notification; fields Alertmanager may add later are accepted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    def identity(self) -> str:
        """Alertmanager's fingerprint, or a stable hash of the labels when it is missing."""
        if self.fingerprint:
            return self.fingerprint
        canonical = "\x00".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: str = "4"
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(max_length=5000)


class Notification(BaseModel):
    """A direct notification from one of our services or an operator."""

    title: str = Field(min_length=1, max_length=10_000)
    message: str = Field(default="", max_length=100_000)
    level: Level = "info"
    dedup_key: str | None = Field(
        default=None,
        max_length=512,
        description="Optional: a second notification with the same key is not posted again.",
    )


class Queued(BaseModel):
    """The answer once a notification is durably queued."""

    status: Literal["queued"] = "queued"
    messages: int = Field(description="Discord messages queued (0: everything was a duplicate).")
    duplicates: int = Field(default=0, description="Alerts or notifications already queued.")


DiscordId = Annotated[str, StringConstraints(pattern=r"^\d{1,25}$")]


class Mentions(BaseModel):
    """Who a severity pings: Discord role and user ids (snowflakes), nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: tuple[DiscordId, ...] = ()
    users: tuple[DiscordId, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.roles or self.users)

    def __or__(self, other: Mentions) -> Mentions:
        return Mentions(
            roles=tuple(dict.fromkeys((*self.roles, *other.roles))),
            users=tuple(dict.fromkeys((*self.users, *other.users))),
        )
