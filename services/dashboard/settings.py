"""Configuration of the dashboard service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from services.common.settings import ServiceSettings, require_secret


class RollupSettings(ServiceSettings):
    """What the roll-up needs; its CLI reads only these (no dashboard password involved)."""

    rollup_interval_s: float = Field(
        default=60.0, gt=0, description="How often the dashboard rolls closed hours."
    )
    rollup_grace_s: float = Field(
        default=120.0,
        ge=0,
        description="An hour is rolled this long after it ends (later writes re-roll it).",
    )


class Settings(RollupSettings):
    """Every variable is documented in `.env.example`."""

    port: int = Field(
        default=8050,
        ge=1,
        le=65535,
        description="HTTP port (DASHBOARD_PORT).",
        validation_alias="DASHBOARD_PORT",
    )
    dashboard_user: str = Field(default="monitoring", min_length=1, description="Login name.")
    dashboard_password: str | None = Field(
        default=None, description="Login password; required outside DEV_MODE."
    )
    dashboard_refresh_s: int = Field(
        default=30, ge=5, le=3600, description="Auto-refresh period of the graphs."
    )
    dashboard_default_range: str = Field(
        default="24h", pattern="^(1h|24h|7d|30d)$", description="Range shown on first load."
    )
    dashboard_latest_rows: int = Field(
        default=20, ge=1, le=500, description="Rows in the latest-predictions table."
    )
    dashboard_query_timeout_s: float = Field(
        default=10.0, gt=0, description="A dashboard query running longer is cancelled."
    )

    @model_validator(mode="after")
    def _password_required(self) -> Settings:
        require_secret("DASHBOARD_PASSWORD", self.dashboard_password, dev_mode=self.dev_mode)
        return self

    @property
    def login_required(self) -> bool:
        """Without a password (only allowed in DEV_MODE) the pages are open."""
        return bool(self.dashboard_password)


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
