"""Settings every service shares; each service subclasses `ServiceSettings`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only in DEV_MODE, so that `make run` works out of the box; refused everywhere else.
DEV_NOTIFIER_TOKEN = "dev-notifier-token"  # noqa: S105

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "password", "admin", "secret"})


class ServiceSettings(BaseSettings):
    """Environment-only configuration; nothing else in a service reads `os.environ`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/predictions_feedback",
        description="PostgreSQL DSN shared by every service.",
    )
    enable_prometheus: bool = Field(default=True, description="Serve /metrics when true.")
    log_level: str = Field(default="INFO", description="Python logging level name.")
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    workers: int = Field(default=1, ge=1, le=32, description="Server worker processes.")
    max_concurrency: int = Field(
        default=256, ge=1, description="Open requests per worker before new ones get 503."
    )
    db_pool_max_size: int = Field(default=10, ge=1, description="asyncpg pool size per process.")
    db_connect_timeout_s: float = Field(default=3.0, gt=0, description="Per-connection timeout.")
    db_probe_interval_s: float = Field(default=2.0, gt=0, description="How often the DB is probed.")
    dev_mode: bool = Field(
        default=False, description="Local development: allows placeholder secrets. Never in prod."
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level


def blank_is_unset(value: object) -> object:
    """None for a blank string: `.env.example` lists every variable, so "VAR=" must mean
    "not configured" (use as a `mode="before"` field validator)."""
    return None if isinstance(value, str) and not value.strip() else value


def require_secret(name: str, value: str | None, *, dev_mode: bool) -> str | None:
    """Refuse a missing or placeholder secret unless running in explicit dev mode."""
    if dev_mode:
        return value
    if value is None or value.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be set to a real secret (set DEV_MODE=true for local use)")
    return value
