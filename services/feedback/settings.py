"""Configuration of the feedback service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from services.common.settings import ServiceSettings, require_secret


class RetentionSettings(ServiceSettings):
    """What the retention purge needs; the CLI reads only these (no admin token involved)."""

    retention_days: int = Field(
        default=180, ge=1, description="Predictions older than this are purged with all they hold."
    )
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the retention purge runs in the service."
    )
    retention_batch_size: int = Field(
        default=5000, ge=1, description="Rows deleted per transaction, so locks stay short."
    )


class Settings(RetentionSettings):
    """Every variable is documented in `.env.example`."""

    port: int = Field(
        default=8001,
        ge=1,
        le=65535,
        description="HTTP port (FEEDBACK_PORT).",
        validation_alias="FEEDBACK_PORT",
    )
    feedback_admin_token: str | None = Field(
        default=None,
        description="Bearer token of the admin endpoints (bulk export, manual purge).",
    )
    feedback_allowed_origins: str = Field(
        default="http://localhost:8000,http://127.0.0.1:8000",
        description="Comma-separated origins whose pages may call this service (CORS).",
    )
    prediction_wait_s: float = Field(
        default=2.0,
        ge=0,
        description="How long a request waits for a prediction still being written by inference.",
    )
    rgpd_rate_limit_per_minute: float = Field(
        default=30.0, gt=0, description="Access/erasure requests a client may make per minute."
    )
    rgpd_rate_limit_burst: int = Field(
        default=10, ge=1, description="Access/erasure requests a client may make at once."
    )
    accuracy_window_s: float = Field(
        default=3600.0, gt=0, description="Window of the live-accuracy gauge."
    )
    accuracy_refresh_s: float = Field(
        default=30.0, gt=0, description="How often the live-accuracy gauge is recomputed."
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of the 503 sent while PostgreSQL is unreachable."
    )

    @model_validator(mode="after")
    def _admin_token_is_real(self) -> Settings:
        require_secret("FEEDBACK_ADMIN_TOKEN", self.feedback_admin_token, dev_mode=self.dev_mode)
        return self

    @property
    def allowed_origins(self) -> list[str]:
        """The CORS origins as a list."""
        return [origin.strip() for origin in self.feedback_allowed_origins.split(",") if origin]


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
