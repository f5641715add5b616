"""The model registry: versions, their files and cards, and the role each one plays.

Rows live in PostgreSQL (`model_versions`, `model_events`) so that every inference replica
agrees; files live in `MODEL_STORE_DIR` (a volume they share), one folder per version. Roles:

- `registered`: stored, serving nothing;
- `active`: answers every request not sent to the canary (exactly one once bootstrapped);
- `shadow`: scores what the active model answers, off the request path, never shown;
- `canary`: answers a share of requests, chosen by prediction id;
- `retired`: served once, serves no more.

Role changes are transactions: the partial unique indexes make two versions in one serving
role impossible whatever runs concurrently. The CLI (`python -m services.inference.registry`)
and the admin HTTP routes both call this module.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from catdog.model import (
    ModelCard,
    ModelError,
    card_path_for,
    file_sha256,
    load_reference,
    reference_path_for,
)
from services.common.notify import Level

Role = Literal["registered", "active", "shadow", "canary", "retired"]
SERVING_ROLES: tuple[Role, ...] = ("active", "shadow", "canary")
MODEL_FILE = "model.onnx"
# Every role change is NOTIFYed here: replicas LISTEN and swap at once.
REGISTRY_CHANNEL = "model_registry"
VERSION_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# Serialise bootstraps of replicas starting together, and role changes.
_BOOTSTRAP_LOCK = 0x6D6F64656C  # "model"
_ROLES_LOCK = 0x726F6C6573  # "roles"

# Interpolated into queries (S608 below): a constant of this module, never input.
_COLUMNS = "version, name, sha256, file_name, card, role, canary_share, registered_at, role_since"


class RegistryError(Exception):
    """A registry operation that cannot be done; `status` is its HTTP equivalent."""

    status = 409


class UnknownVersion(RegistryError):
    """No such version in the registry."""

    status = 404


class InvalidModel(RegistryError):
    """The file or card offered cannot be served."""

    status = 422


@dataclass(frozen=True)
class ModelVersion:
    """One registry row."""

    version: str
    name: str
    sha256: str
    file_name: str
    role: Role
    canary_share: float | None
    registered_at: datetime
    role_since: datetime
    card: dict[str, Any] = field(repr=False)

    def path(self, store_dir: Path) -> Path:
        """The ONNX file inside the store."""
        return store_dir / self.file_name

    def summary(self) -> dict[str, Any]:
        """What `list` and the HTTP API show: no card body, its figures only."""
        return {
            "version": self.version,
            "name": self.name,
            "role": self.role,
            "canary_share": self.canary_share,
            "sha256": self.sha256,
            "registered_at": self.registered_at.isoformat(),
            "role_since": self.role_since.isoformat(),
            "validation": self.card.get("validation"),
            "data": self.card.get("data"),
        }


@dataclass(frozen=True)
class RoleChange:
    """What one registry command changed, for the caller to log and announce."""

    version: str
    from_role: Role | None
    to_role: Role
    actor: str
    reason: str = ""
    figures: dict[str, Any] | None = None
    share: float | None = None
    # The other versions the change moved (an old active retired, a replaced shadow…).
    side_effects: tuple[tuple[str, Role, Role], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def headline(self) -> str:
        """One line for people: "2.1.0: shadow → canary (10 %)"."""
        return f"model {self.version}: {self.from_role or 'new'} → {self.to_role}"


class Registry:
    """Registry operations over one PostgreSQL database and one store folder."""

    def __init__(self, database_url: str, store_dir: Path) -> None:
        self.database_url = database_url
        self.store_dir = store_dir

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.database_url, row_factory=dict_row, connect_timeout=5)

    # Reading

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM model_versions"  # noqa: S608
                " ORDER BY registered_at DESC, version"
            ).fetchall()
        return [ModelVersion(**row) for row in rows]

    def get(self, version: str) -> ModelVersion:
        """One version, or `UnknownVersion`."""
        with self._connect() as connection:
            return _get(connection, version)

    def serving(self) -> dict[Role, ModelVersion]:
        """The versions in a serving role, by role."""
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE role = ANY(%s)",  # noqa: S608
                (list(SERVING_ROLES),),
            ).fetchall()
        return {row["role"]: ModelVersion(**row) for row in rows}

    def events(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest role changes, newest first."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT id, at, version, from_role, to_role, actor, reason, figures"
                " FROM model_events ORDER BY id DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return [{**row, "at": row["at"].isoformat()} for row in rows]

    # Writing

    def register(self, model_path: Path, *, actor: str) -> RoleChange:
        """Copy a model and its card into the store and record it as `registered`.

        Registering the same file again is a no-op; the same version with another file is
        refused, so a version number always means one set of weights.
        """
        card, sha256 = _checked_model(model_path)
        with self._connect() as connection, connection.transaction():
            existing = connection.execute(
                "SELECT sha256, role FROM model_versions WHERE version = %s FOR UPDATE",
                (card.version,),
            ).fetchone()
            if existing is not None:
                if existing["sha256"] != sha256:
                    raise RegistryError(
                        f"version {card.version} is already registered with another file "
                        f"(sha256 {existing['sha256'][:12]}…); give the new model a new version"
                    )
                return RoleChange(card.version, existing["role"], existing["role"], actor, "same")
            file_name = self._store(model_path, card.version)
            connection.execute(
                "INSERT INTO model_versions (version, name, sha256, file_name, card)"
                " VALUES (%s, %s, %s, %s, %s)",
                (card.version, card.name, sha256, file_name, Jsonb(card.raw)),
            )
            change = RoleChange(card.version, None, "registered", actor, "registered")
            _record(connection, change)
        return change

    def bootstrap(self, model_path: Path, *, actor: str) -> RoleChange | None:
        """Make `model_path` the active version when no version is active; None otherwise.

        Replicas starting together against an empty registry all call this. The advisory
        lock is held for the whole check-register-promote, so exactly one of them does it and
        the others find the active version it made.
        """
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as lock:
            lock.execute("SELECT pg_advisory_lock(%s)", (_BOOTSTRAP_LOCK,))
            try:
                if "active" in self.serving():
                    return None
                self.register(model_path, actor=actor)
                card = ModelCard.load(card_path_for(model_path))
                return self.promote(
                    card.version, actor=actor, reason="first model of this registry"
                )
            finally:
                lock.execute("SELECT pg_advisory_unlock(%s)", (_BOOTSTRAP_LOCK,))

    def shadow(self, version: str, *, actor: str, reason: str = "") -> RoleChange:
        """Make `version` the shadow; a previous shadow goes back to `registered`."""
        return self._assign(version, "shadow", None, actor, reason)

    def canary(self, version: str, share: float, *, actor: str, reason: str = "") -> RoleChange:
        """Send `share` (0 < share < 1) of requests to `version`; a previous canary stops."""
        if not 0.0 < share < 1.0:
            raise RegistryError("the canary share must be between 0 and 1 (exclusive)")
        return self._assign(version, "canary", share, actor, reason)

    def promote(self, version: str, *, actor: str, reason: str = "") -> RoleChange:
        """Make `version` the active model; the previous one is retired."""
        return self._assign(version, "active", None, actor, reason)

    def retire(
        self,
        version: str,
        *,
        actor: str,
        reason: str = "",
        figures: dict[str, Any] | None = None,
        only_from: Role | None = None,
    ) -> RoleChange:
        """Stop serving `version` in any role; the active one cannot be retired (promote).

        With `only_from`, refuse unless the version still holds that role (an automatic
        rollback must not retire what a person changed meanwhile).
        """
        return self._assign(version, "retired", None, actor, reason, figures, only_from)

    def rollback(
        self, *, actor: str, reason: str = "", figures: dict[str, Any] | None = None
    ) -> RoleChange:
        """Undo the riskiest live change: retire the canary when there is one, otherwise
        give the active role back to the version that held it before."""
        with self._connect() as connection:
            canary = connection.execute(
                "SELECT version FROM model_versions WHERE role = 'canary'"
            ).fetchone()
            if canary is not None:
                return self._assign(canary["version"], "retired", None, actor, reason, figures)
            previous = connection.execute(
                """
                SELECT e.version FROM model_events e
                JOIN model_versions v ON v.version = e.version
                WHERE e.to_role = 'active' AND v.role <> 'active'
                ORDER BY e.id DESC LIMIT 1
                """
            ).fetchone()
        if previous is None:
            raise RegistryError("nothing to roll back: no canary and no earlier active version")
        return self._assign(previous["version"], "active", None, actor, reason, figures)

    def _assign(
        self,
        version: str,
        role: Role,
        share: float | None,
        actor: str,
        reason: str,
        figures: dict[str, Any] | None = None,
        only_from: Role | None = None,
    ) -> RoleChange:
        with self._connect() as connection, connection.transaction():
            # Role changes queue up here one at a time: row locks alone cannot cover the
            # version that will hold a role once a concurrent change commits.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_ROLES_LOCK,))
            target = _get(connection, version)
            if only_from is not None and target.role != only_from:
                raise RegistryError(f"{version} is {target.role} now, no longer {only_from}")
            if target.role == "active" and role != "active":
                raise RegistryError(
                    f"{version} is the active model; promote another version instead"
                )
            if target.role == role and target.canary_share == share:
                return RoleChange(version, role, role, actor, "unchanged")
            moved: list[tuple[str, Role, Role]] = []
            if role in SERVING_ROLES:
                holder = connection.execute(
                    "SELECT version FROM model_versions WHERE role = %s AND version <> %s",
                    (role, version),
                ).fetchone()
                if holder is not None:
                    # A replaced active model is retired; a replaced candidate is just idle.
                    after: Role = "retired" if role == "active" else "registered"
                    _set_role(connection, holder["version"], after, None)
                    moved.append((holder["version"], role, after))
            _set_role(connection, version, role, share)
            change = RoleChange(
                version, target.role, role, actor, reason, figures, share, tuple(moved)
            )
            for other, before, after in moved:
                _record(
                    connection, RoleChange(other, before, after, actor, f"replaced by {version}")
                )
            _record(connection, change)
            connection.execute("SELECT pg_notify(%s, %s)", (REGISTRY_CHANNEL, version))
        return change

    def _store(self, model_path: Path, version: str) -> str:
        """Copy model and card into `<store>/<version>/`, atomically (temp folder, rename)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        target = self.store_dir / version
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.store_dir))
            shutil.copyfile(model_path, staging / MODEL_FILE)
            shutil.copyfile(card_path_for(model_path), card_path_for(staging / MODEL_FILE))
            if reference_path_for(model_path).is_file():
                shutil.copyfile(
                    reference_path_for(model_path), reference_path_for(staging / MODEL_FILE)
                )
            staging.rename(target)
        return f"{version}/{MODEL_FILE}"


def _checked_model(model_path: Path) -> tuple[ModelCard, str]:
    if not model_path.is_file():
        raise InvalidModel(f"{model_path} is not a file")
    try:
        card = ModelCard.load(card_path_for(model_path))
    except ModelError as error:
        raise InvalidModel(str(error)) from None
    if not VERSION_RULE.fullmatch(card.version):
        raise InvalidModel(
            f"version {card.version!r} must be letters, digits and . _ + - (at most 64)"
        )
    sha256 = file_sha256(model_path)
    if sha256 != card.sha256:
        raise InvalidModel(f"{model_path.name} has sha256 {sha256}, its card says {card.sha256}")
    try:
        load_reference(model_path, card)
    except ModelError as error:
        raise InvalidModel(str(error)) from None
    return card, sha256


def _get(connection: psycopg.Connection[dict[str, Any]], version: str) -> ModelVersion:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM model_versions WHERE version = %s",  # noqa: S608
        (version,),
    ).fetchone()
    if row is None:
        raise UnknownVersion(f"no model version {version!r} in the registry")
    return ModelVersion(**row)


def _set_role(
    connection: psycopg.Connection[dict[str, Any]], version: str, role: Role, share: float | None
) -> None:
    connection.execute(
        "UPDATE model_versions SET role = %s, canary_share = %s, role_since = now()"
        " WHERE version = %s",
        (role, share, version),
    )


def _record(connection: psycopg.Connection[dict[str, Any]], change: RoleChange) -> None:
    connection.execute(
        "INSERT INTO model_events (version, from_role, to_role, actor, reason, figures)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            change.version,
            change.from_role,
            change.to_role,
            change.actor,
            change.reason,
            Jsonb(change.figures) if change.figures is not None else None,
        ),
    )


_LEVELS: dict[str, Level] = {"active": "success", "retired": "warning"}


def announcement(change: RoleChange) -> tuple[str, str, Level]:
    """Title, message and level of the Discord message for a role change."""
    what = {
        "registered": "is registered and serves nothing yet",
        "shadow": "now scores every answered photo in the shadow (its answers are never shown)",
        "canary": f"now answers {change.share or 0:.0%} of requests as the canary",
        "active": "is now the active model and answers every request",
        "retired": "is retired and serves no more",
    }[change.to_role]
    lines = [f"Model {change.version} {what} (was {change.from_role or 'new'})."]
    lines += [f"{other}: {before} → {after}." for other, before, after in change.side_effects]
    if change.reason:
        lines.append(f"Reason: {change.reason}")
    lines.append(f"By {change.actor}.")
    return change.headline(), "\n".join(lines), _LEVELS.get(change.to_role, "info")


def local_actor(tool: str) -> str:
    """Who runs a command on this machine, as `model_events` records it: user@host (tool)."""
    return f"{getpass.getuser()}@{socket.gethostname()} ({tool})"


def as_json(value: Any) -> str:
    """JSON for machines, datetimes as ISO 8601."""
    return json.dumps(value, default=lambda item: item.isoformat(), indent=2)
