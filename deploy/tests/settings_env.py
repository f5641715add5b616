"""What each service reads from its environment, introspected from its `Settings` class.

The deployment files are checked against this, so a field added to a service's settings is
caught in every place it must be passed (`.env.example`, compose, Kubernetes).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from services.common.settings import ServiceSettings, documented_names

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / "services"


@dataclass(frozen=True)
class EnvVar:
    """One environment variable a settings class reads."""

    name: str
    field: str
    info: FieldInfo
    owner: type[BaseSettings]

    @property
    def required(self) -> bool:
        """True when the field has no default."""
        return self.info.is_required()

    @property
    def default(self) -> Any:
        """The code's default value."""
        return self.info.default

    def parse(self, text: str) -> Any:
        """`text` read as the settings class reads this field from the environment: its
        type, and its own field validators (a comma-separated list, for example)."""
        validators = [
            decorator
            for decorator in self.owner.__pydantic_decorators__.field_validators.values()
            if self.field in decorator.info.fields
        ]
        value: Any = text
        for decorator in validators:
            if decorator.info.mode == "before":
                value = decorator.bind_to_cls(self.owner).func(value)
        value = TypeAdapter(self.info.annotation).validate_python(value)
        for decorator in validators:
            if decorator.info.mode == "after":
                value = decorator.bind_to_cls(self.owner).func(value)
        return value


def service_names() -> list[str]:
    """Services present in this checkout: a package with both `app.py` and `settings.py`."""
    return sorted(
        path.name
        for path in SERVICES_DIR.iterdir()
        if (path / "app.py").is_file() and (path / "settings.py").is_file()
    )


def settings_class(service: str) -> type[BaseSettings]:
    """The service's `Settings` class."""
    module = importlib.import_module(f"services.{service}.settings")
    cls: type[BaseSettings] = module.Settings
    return cls


def env_vars(cls: type[BaseSettings]) -> dict[str, EnvVar]:
    """Environment variable name -> field, honouring aliases and the env prefix."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    found: dict[str, EnvVar] = {}
    for field_name, info in cls.model_fields.items():
        for name in _names(field_name, info, prefix):
            found[name.upper()] = EnvVar(name.upper(), field_name, info, cls)
    return found


def _names(field_name: str, info: FieldInfo, prefix: str) -> list[str]:
    # pydantic-settings prefixes field names, never aliases.
    return [
        prefix + name if name == field_name else name for name in documented_names(field_name, info)
    ]


_LIST_SETTINGS = """
import importlib, json, sys
from pydantic_settings import BaseSettings
importlib.import_module(f"services.{sys.argv[1]}.app")
seen, todo = [], list(BaseSettings.__subclasses__())
while todo:
    cls = todo.pop()
    todo.extend(cls.__subclasses__())
    if cls.__module__.startswith("services.") and "tests" not in cls.__module__.split("."):
        seen.append(f"{cls.__module__}:{cls.__qualname__}")
print(json.dumps(sorted(set(seen))))
"""


@cache
def loaded_settings_classes(service: str) -> tuple[str, ...]:
    """Every settings class the service's process loads (its own, and e.g. a client's).

    Found by importing the app in a fresh interpreter, so what one service imports does not
    leak into another's answer.
    """
    result = subprocess.run(
        [sys.executable, "-c", _LIST_SETTINGS, service],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return tuple(names)


def process_env_vars(service: str) -> dict[str, EnvVar]:
    """Every variable the service's process reads, through any settings class it loads."""
    found: dict[str, EnvVar] = {}
    for qualified in loaded_settings_classes(service):
        module, _, name = qualified.partition(":")
        cls = getattr(importlib.import_module(module), name)
        # A ServiceSettings subclass configures the service it belongs to, even when another
        # service imports it for a constant; other settings classes (clients) are read by
        # whichever process loads them.
        if issubclass(cls, ServiceSettings):
            continue
        found.update(env_vars(cls))
    found.update(env_vars(settings_class(service)))
    return found


def all_env_vars() -> dict[str, dict[str, EnvVar]]:
    """Service name -> every variable its process reads."""
    return {name: process_env_vars(name) for name in service_names()}
