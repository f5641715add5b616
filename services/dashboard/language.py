"""The dashboard's language: chosen for each request, read by the layout and the callbacks.

Dash's page asks for its layout and its callbacks in requests of its own, which carry neither
the page's `?lang=` nor anything we could add to them: only the address prefix the page was
given (`requests_pathname_prefix`). So the page is given `/monitoring/<language>/` as that
prefix; `LanguageFromPath` takes the language off the address before Dash routes it, and the
layout and callbacks read it from `current()`. A request without one (a bare
`/monitoring/…`, or the page itself) gets `?lang=`, else its Accept-Language.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs

from dash import Dash
from plotly.io.json import to_json_plotly
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    choose_language,
    load_catalogues,
    translate,
)
from services.dashboard.window import Window

CATALOGUES = load_catalogues(Path(__file__).with_name("i18n"))
# A narrow no-break space: French groups thousands and sets `%` apart with it.
THIN = "\u202f"
_current: ContextVar[str] = ContextVar("dashboard_language", default=DEFAULT_LANGUAGE)


def current() -> str:
    """The language of the request being answered."""
    return _current.get()


def t(key: str, **values: object) -> str:
    """The text of `key` in the current language."""
    return translate(CATALOGUES[current()], key, **values)


def count(value: int) -> str:
    """A whole number with its thousands grouped: `12,345`, `12 345`."""
    text = f"{value:,}"
    return text.replace(",", THIN) if current() == "fr" else text


def decimal(value: float, digits: int = 1) -> str:
    """A number with `digits` decimals: `6.1`, `6,1`."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", THIN).replace(".", ",") if current() == "fr" else text


def percent(value: float, digits: int = 1) -> str:
    """A share as a percentage: `12.5%`, `12,5 %`."""
    if current() == "fr":
        return f"{decimal(value * 100, digits)}{THIN}%"
    return f"{value:.{digits}%}"


def moment(value: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as the page writes it, the same in every language (ISO order, UTC)."""
    return f"{value:{fmt}}"


def describe(window: Window) -> str:
    """The window in words: `2026-03-01 00:00 – 2026-03-02 00:00 UTC`."""
    return t("window.range", start=moment(window.start), end=moment(window.end))


def step(window: Window) -> str:
    """The bucket width in words: `15 min`, `6 h`, `2 days`."""
    minutes = int(window.bucket.total_seconds() // 60)
    if minutes < 60:
        return t("window.minutes", count=minutes)
    if minutes < 24 * 60:
        return t("window.hours", count=minutes // 60)
    days = minutes // (24 * 60)
    return t("window.day") if days == 1 else t("window.days", count=days)


class LanguageFromPath:
    """Set the request's language; take `<language>/` off the address after `prefix`."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def _language(self, scope: Scope) -> str:
        path: str = scope["path"]
        for language in LANGUAGES:
            marked = f"{self.prefix}{language}/"
            if path.startswith(marked):
                # In place: the metrics middleware outside labels by the route Dash serves.
                scope["path"] = self.prefix + path[len(marked) :]
                scope["raw_path"] = scope["path"].encode()
                return language
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("lang", [None])
        headers = dict(scope.get("headers", []))
        accept = headers.get(b"accept-language", b"").decode("latin-1")
        return choose_language(asked[-1], accept)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        token = _current.set(self._language(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


CONFIG_START = '<script id="_dash-config" type="application/json">'
CONFIG_END = "</script>"


class LocalisedDash(Dash):
    """Dash whose page says its language and sends its own requests under the language's prefix."""

    def interpolate_index(
        self,
        metas: str = "",
        title: str = "",
        css: str = "",
        config: str = "",
        scripts: str = "",
        app_entry: str = "",
        favicon: str = "",
        renderer: str = "",
    ) -> str:
        """The page in the request's language: `<html lang>`, title, and the renderer's prefix."""
        if not (config.startswith(CONFIG_START) and config.endswith(CONFIG_END)):
            raise RuntimeError("Dash's page configuration changed shape: update LocalisedDash")
        settings = json.loads(config[len(CONFIG_START) : -len(CONFIG_END)])
        settings["requests_pathname_prefix"] = f"{self.config.requests_pathname_prefix}{current()}/"
        # Written as Dash writes it: plotly's JSON escapes `<`, so no text can end the element.
        config = f"{CONFIG_START}{to_json_plotly(settings)}{CONFIG_END}"
        page: str = super().interpolate_index(
            metas=metas,
            title=t("page.title"),
            css=css,
            config=config,
            scripts=scripts,
            app_entry=app_entry,
            favicon=favicon,
            renderer=renderer,
        )
        if "<html>" not in page:
            raise RuntimeError("Dash's page template changed: update LocalisedDash")
        return page.replace("<html>", f'<html lang="{current()}">', 1)
