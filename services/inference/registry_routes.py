"""The model registry over HTTP, under the admin token: what `registry_cli` does, remotely.

A change is applied to the registry (PostgreSQL), announced on Discord, and picked up by
this replica at once and by the others within MODEL_REGISTRY_POLL_S.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from catdog.model import card_path_for, reference_path_for
from services.common.auth import bearer_token_dependency
from services.common.notify import send_in_background
from services.inference.lineup import LineupManager
from services.inference.registry import Registry, RegistryError, RoleChange, announcement


class Reason(BaseModel):
    """Why a role changes; recorded in `model_events` and announced."""

    reason: str = Field(default="", max_length=500)


class CanaryShare(Reason):
    """The share of requests the canary answers."""

    share: float = Field(gt=0, lt=1)


def _manager(request: Request) -> LineupManager:
    manager: LineupManager = request.app.state.lineup
    return manager


def _registry(request: Request) -> Registry:
    return _manager(request).registry


RegistryDep = Annotated[Registry, Depends(_registry)]


def _actor(request: Request) -> str:
    # The token identifies the caller's role, not a person: record where the call came from.
    return f"admin api from {request.client.host if request.client else 'unknown'}"


async def _apply(request: Request, operation: Callable[[], RoleChange]) -> dict[str, Any]:
    try:
        change = await asyncio.get_running_loop().run_in_executor(None, operation)
    except RegistryError as error:
        raise HTTPException(error.status, str(error)) from None
    if change.from_role != change.to_role:
        send_in_background(*announcement(change))
        await _manager(request).sync()
    return change.as_dict()


def _reason(body: Reason | None) -> str:
    return body.reason if body else ""


def registry_router(token: str | None) -> APIRouter:
    """The `/admin/models` routes, refused without `token`."""
    admin = APIRouter(
        prefix="/admin/models",
        tags=["model registry"],
        dependencies=[Depends(bearer_token_dependency(token))],
        responses={
            401: {"description": "missing or wrong admin token"},
            429: {"description": "too many failed attempts from this client"},
        },
    )

    @admin.get("")
    async def list_versions(registry: RegistryDep) -> list[dict[str, Any]]:
        """Every version with its role and validation figures, newest first."""
        versions = await asyncio.get_running_loop().run_in_executor(None, registry.versions)
        return [version.summary() for version in versions]

    @admin.get("/events")
    async def events(registry: RegistryDep, limit: int = 50) -> list[dict[str, Any]]:
        """The latest role changes."""
        limit = max(1, min(limit, 500))
        return await asyncio.get_running_loop().run_in_executor(None, registry.events, limit)

    @admin.post("", status_code=201)
    async def register(request: Request, registry: RegistryDep) -> dict[str, Any]:
        """Register a model: multipart `model` (the ONNX file), `card` (its JSON card) and,
        when the card names one, `reference` (its drift reference, `.npy`)."""
        try:
            form = await request.form(max_files=3, max_fields=4)
        except (MultiPartException, ValueError, KeyError) as error:
            raise HTTPException(422, f"malformed multipart form: {error}") from None
        model, card = form.get("model"), form.get("card")
        if not isinstance(model, UploadFile) or not isinstance(card, UploadFile):
            raise HTTPException(422, "send the ONNX file as 'model' and its card as 'card'")
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "model.onnx"
            path.write_bytes(await model.read())
            card_path_for(path).write_bytes(await card.read())
            reference = form.get("reference")
            if isinstance(reference, UploadFile):
                reference_path_for(path).write_bytes(await reference.read())
            await form.close()
            actor = _actor(request)
            try:
                return await _apply(request, lambda: registry.register(path, actor=actor))
            except HTTPException as error:
                # The files sit in this server's scratch folder: name them, never where they are.
                detail = str(error.detail).replace(f"{scratch}/", "")
                raise HTTPException(error.status_code, detail) from None

    @admin.post("/rollback")
    async def rollback(
        request: Request, registry: RegistryDep, body: Reason | None = None
    ) -> dict[str, Any]:
        """Retire the canary, or give the active role back to the previous version."""
        actor = _actor(request)
        return await _apply(request, lambda: registry.rollback(actor=actor, reason=_reason(body)))

    @admin.post("/{version}/shadow")
    async def shadow(
        request: Request, registry: RegistryDep, version: str, body: Reason | None = None
    ) -> dict[str, Any]:
        """Make `version` the shadow."""
        actor = _actor(request)
        return await _apply(
            request, lambda: registry.shadow(version, actor=actor, reason=_reason(body))
        )

    @admin.post("/{version}/canary")
    async def canary(
        request: Request, registry: RegistryDep, version: str, body: CanaryShare
    ) -> dict[str, Any]:
        """Send `share` of requests to `version`."""
        actor = _actor(request)
        return await _apply(
            request,
            lambda: registry.canary(version, body.share, actor=actor, reason=_reason(body)),
        )

    @admin.post("/{version}/promote")
    async def promote(
        request: Request, registry: RegistryDep, version: str, body: Reason | None = None
    ) -> dict[str, Any]:
        """Make `version` the active model."""
        actor = _actor(request)
        return await _apply(
            request, lambda: registry.promote(version, actor=actor, reason=_reason(body))
        )

    @admin.post("/{version}/retire")
    async def retire(
        request: Request, registry: RegistryDep, version: str, body: Reason | None = None
    ) -> dict[str, Any]:
        """Stop serving `version`."""
        actor = _actor(request)
        return await _apply(
            request, lambda: registry.retire(version, actor=actor, reason=_reason(body))
        )

    return admin
