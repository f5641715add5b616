"""Settings of anything that sends notifications (scripts, other services), kept light to import."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notifier.settings import DEV_NOTIFIER_TOKEN


class ClientSettings(BaseSettings):
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
        # `.env.example` lists every variable, so "VAR=" must mean "not configured".
        return None if isinstance(value, str) and not value.strip() else value

    def token(self) -> str | None:
        """The bearer token, with the development default in DEV_MODE."""
        if self.notifier_token:
            return self.notifier_token.get_secret_value()
        return DEV_NOTIFIER_TOKEN if self.dev_mode else None
