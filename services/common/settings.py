"""Settings every service shares; each service subclasses `ServiceSettings`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from services.common.running_stack import stack_environment

# Only in DEV_MODE, so that `make run` works out of the box; refused everywhere else.
DEV_NOTIFIER_TOKEN = "dev-notifier-token"  # noqa: S105
DEV_INFERENCE_ADMIN_TOKEN = "dev-inference-admin-token"  # noqa: S105

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "password", "admin", "secret"})
# Values this repository publishes (development and former benchmark defaults): anyone has them.
PUBLISHED_SECRETS = frozenset(
    {
        DEV_NOTIFIER_TOKEN,
        DEV_INFERENCE_ADMIN_TOKEN,
        "bench-notifier-token-5d1e",
        "bench-password-not-secret",
    }
)
# `openssl rand -hex 32`, as `.env.example` suggests, gives 64 characters of 16 kinds; these
# floors refuse what a person types when asked for "a token" (`x`, `Changeme!`, `aaaa…`).
MIN_SECRET_LENGTH = 16
MIN_SECRET_DISTINCT_CHARACTERS = 8


class ProjectSettings(BaseSettings):
    """Read from keyword arguments, then the environment, then the stack `make run` runs (what
    a person sets wins over it, and it over `.env`, for its own services too), then `.env` and
    secrets, each only under the documented names."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            DocumentedNamesOnly(env_settings),
            StackFileSource(settings_cls),
            DocumentedNamesOnly(dotenv_settings),
            DocumentedNamesOnly(file_secret_settings),
        )


class ServiceSettings(ProjectSettings):
    """Environment-only configuration; nothing else in a service reads `os.environ`."""

    # `validate_by_name` lets Python callers (tests, benchmarks) pass field names; the
    # environment sources are wrapped below so that it does not add a second variable name.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_by_name=True
    )

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/predictions_feedback",
        description="PostgreSQL DSN shared by every service.",
    )
    enable_prometheus: bool = Field(default=True, description="Serve /metrics when true.")
    log_level: str = Field(default="INFO", description="Python logging level name.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json (one object per line), console (readable lines), or auto: console "
        "when standard error is a terminal, else json.",
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    workers: int = Field(default=1, ge=1, le=32, description="Server worker processes.")
    max_concurrency: int = Field(
        default=256, ge=1, description="Open requests per worker before new ones get 503."
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="Open connections per worker (idle ones included) before new ones are closed.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection has to send a request line and headers, else 408.",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For "
        "names the client; unset, the peer is the client and the header is ignored.",
    )
    db_pool_max_size: int = Field(default=10, ge=1, description="asyncpg pool size per process.")
    db_connect_timeout_s: float = Field(default=3.0, gt=0, description="Per-connection timeout.")
    db_probe_interval_s: float = Field(default=2.0, gt=0, description="How often the DB is probed.")
    dev_mode: bool = Field(
        default=False, description="Local development: allows placeholder secrets. Never in prod."
    )

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _blank_trusts_no_proxy(cls, value: object) -> object:
        return blank_is_unset(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level


class DocumentedNamesOnly(PydanticBaseSettingsSource):
    """An environment source that reads an aliased field under its alias only.

    With `validate_by_name`, pydantic-settings also looks a field up under its own name: an
    undocumented `DELIVERY_POLL_S` would work beside `NOTIFIER_POLL_S`, and a bare `PORT` would
    move every service. The wrapped source keys each value by the name it was found under, so
    values found under an aliased field's own name are dropped.
    """

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self._source = source
        self._undocumented = frozenset(
            name
            for name, info in source.settings_cls.model_fields.items()
            if name not in documented_names(name, info)
        )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The wrapped source's answer (unused by `__call__`, required by the base class)."""
        return self._source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {
            key: value for key, value in self._source().items() if key not in self._undocumented
        }


class StackFileSource(PydanticBaseSettingsSource):
    """The variables the stack of `make run` offers (`services.common.running_stack`), read as
    if they were set in the environment."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._offered = {name.upper(): value for name, value in stack_environment().items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value under the first of the field's variable names that the stack offers."""
        for name in documented_names(field_name, field):
            if name.upper() in self._offered:
                return self._offered[name.upper()], field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def documented_names(field_name: str, info: FieldInfo) -> tuple[str, ...]:
    """The names a field is read under from the environment: its alias(es), else its name."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return (alias,)
    if isinstance(alias, AliasChoices):
        return tuple(choice for choice in alias.choices if isinstance(choice, str))
    return (field_name,)


def blank_is_unset(value: object) -> object:
    """None for a blank string: `.env.example` lists every variable, so "VAR=" must mean
    "not configured" (use as a `mode="before"` field validator)."""
    return None if isinstance(value, str) and not value.strip() else value


def require_secret(name: str, value: str | None, *, dev_mode: bool) -> str | None:
    """Refuse a missing, placeholder, published, short or repetitive secret unless running in
    explicit dev mode. The messages never quote the value."""
    if dev_mode:
        return value
    if value is None or value.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be set to a real secret (set DEV_MODE=true for local use)")
    if value.strip() in PUBLISHED_SECRETS:
        raise ValueError(f"{name} is a value published in this repository: generate your own")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"{name} is shorter than {MIN_SECRET_LENGTH} characters: use `openssl rand -hex 32`"
        )
    if len(set(value)) < MIN_SECRET_DISTINCT_CHARACTERS:
        raise ValueError(
            f"{name} has fewer than {MIN_SECRET_DISTINCT_CHARACTERS} different characters: "
            "use `openssl rand -hex 32`"
        )
    return value
