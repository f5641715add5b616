"""Which pages Prometheus and Alertmanager serve, asked of each address once.

Builds differ: upstream Prometheus serves its UI at the root, Debian's 2.42 only its classic UI
under `/classic/` (its `/graph` redirects and loses the query; `/alerts` is a 404). Upstream
Alertmanager has a web application (`/#/silences/new`), Debian's none (its `/` is a page
saying so). Links in messages follow what the tools answer, so they open whichever is installed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
# An address that did not answer is asked again after this long, not on every alert.
RETRY_S = 300.0


@dataclass(frozen=True)
class Consoles:
    """What was found: each Prometheus base and where its UI pages are; each Alertmanager base
    and whether it has a web application."""

    prometheus_pages: Mapping[str, str] = field(default_factory=dict)
    alertmanager_ui: Mapping[str, bool] = field(default_factory=dict)


class ConsoleProbe:
    """Asks each address once; one that does not answer, again after `RETRY_S`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._pages: dict[str, str] = {}
        self._ui: dict[str, bool] = {}
        self._unanswered: dict[str, float] = {}

    async def consoles(
        self, prometheus_bases: Iterable[str], alertmanager_bases: Iterable[str]
    ) -> Consoles:
        """What each of these addresses serves."""
        pages = {base: await self.prometheus_pages(base) for base in set(prometheus_bases)}
        ui = {base: await self.alertmanager_has_ui(base) for base in set(alertmanager_bases)}
        return Consoles(pages, ui)

    async def prometheus_pages(self, base: str) -> str:
        """Where Prometheus's pages (`graph`, `alerts`…) live: `base` or `base/classic`; the
        root, as upstream serves them, when it does not answer."""
        if base in self._pages:
            return self._pages[base]
        for root in (base, f"{base}/classic"):
            found = await self._serves(f"{root}/graph")
            if found is None:
                return base
            if found:
                self._pages[base] = root
                return root
        self._pages[base] = base
        return base

    async def alertmanager_has_ui(self, base: str) -> bool:
        """Whether Alertmanager serves its web application (its script); False when it does
        not answer: the `amtool` command works with every build."""
        if base not in self._ui:
            found = await self._serves(f"{base}/script.js")
            if found is None:
                return False
            self._ui[base] = found
        return self._ui[base]

    async def _serves(self, url: str) -> bool | None:
        """200 on the page itself (a redirect is not the page); None: no answer."""
        if time.monotonic() - self._unanswered.get(url, -RETRY_S) < RETRY_S:
            return None
        try:
            response = await self._client.get(url, follow_redirects=False)
        except httpx.HTTPError as error:
            logger.info("monitoring page not reachable", extra={"url": url, "error": repr(error)})
            self._unanswered[url] = time.monotonic()
            return None
        return response.status_code == 200
