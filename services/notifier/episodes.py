"""One living Discord message per alert group: which alerts it shows, and in which part.

An episode is a group's life on one route, from its first alert until every alert of it is
resolved. It is one Discord message, posted once and then edited as its alerts change (several
messages, "parts", when Discord's limits need more). An alert keeps the part it was first
given, so an edit never moves an alert from one message to another, and a part is filled with
room to spare, so that the edits of its alerts (resolved, a new value in the description) still
fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from services.notifier import limits
from services.notifier.schemas import AlertmanagerAlert

# Characters of a part's embeds kept free when it is filled, for its alerts' later edits.
PART_HEADROOM = 600


@dataclass
class Episode:
    """The alerts of one living message, as last received, in first-seen order."""

    id: int
    group_key: str
    route: str
    receiver: str = ""
    group_labels: dict[str, str] = field(default_factory=dict)
    alerts: list[AlertmanagerAlert] = field(default_factory=list)
    parts: list[list[str]] = field(default_factory=list)
    # Alertmanager's address as its latest webhook gave it (not stored: every render has one).
    external_url: str = ""

    @property
    def firing(self) -> int:
        """How many of its alerts are firing."""
        return sum(alert.status == "firing" for alert in self.alerts)

    @property
    def resolved(self) -> bool:
        """Every alert is resolved: the episode is over, the next firing opens another."""
        return bool(self.alerts) and self.firing == 0

    def alerts_of(self, part: int) -> list[AlertmanagerAlert]:
        """The alerts one part shows, in order."""
        return self.alerts_by_part()[part]

    def alerts_by_part(self) -> list[list[AlertmanagerAlert]]:
        """The alerts each part shows, in order: one index of the alerts for every part."""
        by_identity = {alert.identity(): alert for alert in self.alerts}
        return [[by_identity[identity] for identity in part] for part in self.parts]

    def merge(
        self, incoming: Iterable[AlertmanagerAlert], size_of: Callable[[AlertmanagerAlert], int]
    ) -> None:
        """Take the newest state of each alert; a new alert joins the last part with room.

        Linear in the alerts: a 5 000-alert webhook must not hold the event loop for long, so
        sizes are computed once per alert and looked up by identity.
        """
        position = {alert.identity(): index for index, alert in enumerate(self.alerts)}
        sizes: dict[str, int] = {}

        def size(identity: str) -> int:
            if identity not in sizes:
                sizes[identity] = size_of(self.alerts[position[identity]])
            return sizes[identity]

        for alert in incoming:
            identity = alert.identity()
            if identity in position:
                self.alerts[position[identity]] = alert
                sizes.pop(identity, None)
                continue
            position[identity] = len(self.alerts)
            self.alerts.append(alert)
            self._place(identity, size)

    def _place(self, identity: str, size: Callable[[str], int]) -> None:
        if self.parts:
            last = self.parts[-1]
            used = sum(size(other) for other in last)
            budget = limits.EMBEDS_TOTAL - PART_HEADROOM
            if len(last) < limits.EMBEDS_PER_MESSAGE and used + size(identity) <= budget:
                last.append(identity)
                return
        self.parts.append([identity])

    def alerts_json(self) -> str:
        """The alerts as stored (Alertmanager's own field names)."""
        return json.dumps([alert.model_dump(mode="json", by_alias=True) for alert in self.alerts])

    @staticmethod
    def alerts_from(stored: list[dict[str, Any]]) -> list[AlertmanagerAlert]:
        """The alerts read back."""
        return [AlertmanagerAlert.model_validate(item) for item in stored]
