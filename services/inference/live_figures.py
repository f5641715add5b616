"""Each registered version's live figures, beside its card's: what `registry_cli list` shows.

Over everything the version ever answered: answers served and their accuracy on the answers
users labelled (with its 95 % Wilson interval) as the canary analysis counts them; the newest
check of the model watch (estimated accuracy, drift verdict); and how its last canary ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.inference.canary import VersionFigures, figures_since
from services.inference.model_watch import drift_verdict, latest_check

# The interval the list shows: 95 %.
ALPHA = 0.05
_EVER = datetime(1970, 1, 1, tzinfo=UTC)
# How each version's last canary period ended (a version never canary has no row).
_CANARY_ENDINGS = """
SELECT DISTINCT ON (version) version, to_role, actor, reason, at
FROM model_events WHERE from_role = 'canary' AND version = ANY($1::text[])
ORDER BY version, id DESC
"""


async def live_figures(database_url: str, roles: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Version -> its live figures, for versions given with their current role."""
    versions = list(roles)
    connection = await asyncpg.connect(database_url)
    try:
        served = await figures_since(connection, versions, _EVER)
        checks = {version: await latest_check(connection, version) for version in versions}
        endings = {
            row["version"]: dict(row) for row in await connection.fetch(_CANARY_ENDINGS, versions)
        }
    finally:
        await connection.close()
    return {
        version: {
            **_served(served[version]),
            **_watched(checks[version]),
            "canary": canary_outcome(roles[version], endings.get(version)),
        }
        for version in versions
    }


def _served(figures: VersionFigures) -> dict[str, Any]:
    interval = figures.accuracy_interval(ALPHA)
    return {
        "answers": figures.answers,
        "labelled": figures.labelled,
        "feedback_accuracy": figures.accuracy,
        "feedback_interval": list(interval) if interval else None,
    }


def _watched(check: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "estimated_accuracy": check["estimated_accuracy"] if check else None,
        "drift": drift_verdict(check),
        "checked_at": check["at"].isoformat() if check else None,
    }


def canary_outcome(role: str, ending: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The version's canary: running, promoted or rolled back (by whom, why); None: never one."""
    if role == "canary":
        return {"outcome": "running"}
    if ending is None:
        return None
    outcome = "promoted" if ending["to_role"] == "active" else "rolled back"
    return {
        "outcome": outcome,
        "actor": ending["actor"],
        "reason": ending["reason"],
        "at": ending["at"].isoformat(),
    }
