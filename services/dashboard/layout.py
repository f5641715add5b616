"""The page: range selector and refresh on top, headline numbers, then the graphs and table.

Built for each page load, in the request's language (`language.t`).
"""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from services.common.i18n import LANGUAGES
from services.dashboard.language import current, t
from services.dashboard.window import CUSTOM, PRESETS

# Graph ids in page order, with their titles' catalogue keys; callbacks and tests use the ids.
GRAPHS = {
    "graph-traffic": "graph.traffic",
    "graph-versions": "graph.versions",
    "graph-latency-series": "graph.latency_series",
    "graph-latency-histogram": "graph.latency_histogram",
    "graph-confidence": "graph.confidence",
    "graph-low-confidence": "graph.low_confidence",
    "graph-satisfaction": "graph.satisfaction",
    "graph-consent": "graph.consent",
}
VERSION_GRAPH = "graph-version-accuracy"

WATCH_GRAPHS = {
    "graph-drift": "graph.drift",
    "graph-estimated-accuracy": "graph.estimated_accuracy",
    "graph-reliability": "graph.reliability",
}
# Each language by its own name: whoever cannot read the page can still find theirs.
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def _graph(graph_id: str, title: str, class_name: str = "panel") -> html.Div:
    return html.Div(
        [
            html.H3(t(title)),
            dcc.Loading(
                dcc.Graph(
                    id=graph_id,
                    # Month and day names in the page's language: French's from
                    # assets/vendor/plotly-locale-fr.js, English Plotly's own.
                    config={"displaylogo": False, "responsive": True, "locale": current()},
                    style={"height": "280px"},
                ),
                type="dot",
                delay_show=400,
            ),
        ],
        className=class_name,
    )


def _section(section_id: str, title: str, note: str, below: html.Div) -> html.Section:
    """A titled section: its table (`<id>-table`, filled by a callback) and note, then graphs.

    `title` and `note` are catalogue keys.
    """
    return html.Section(
        [
            html.H2(t(title)),
            html.Div(
                [html.Div(id=f"{section_id}-table"), html.P(t(note), className="note")],
                className="panel",
            ),
            below,
        ],
        id=section_id,
        className="section",
    )


def _versions() -> html.Section:
    """Every model version of the range side by side: what it answered, how fast, how well."""
    return _section(
        "versions",
        "versions.title",
        "versions.note",
        _graph(VERSION_GRAPH, "graph.version_accuracy", "panel wide"),
    )


def _watch() -> html.Section:
    """Is each version going wrong before users say so: drift, label-free accuracy, calibration."""
    return _section(
        "watch",
        "watch.title",
        "watch.note",
        html.Div(
            [_graph(graph_id, title) for graph_id, title in WATCH_GRAPHS.items()],
            className="grid wide",
        ),
    )


def _controls(default_range: str, refresh_s: int) -> html.Div:
    options = [{"label": t(f"range.{key}"), "value": key} for key in PRESETS]
    options.append({"label": t("range.custom"), "value": CUSTOM})
    return html.Div(
        [
            dcc.RadioItems(
                id="range-preset",
                options=options,
                value=default_range,
                inline=True,
                className="range-preset",
            ),
            dcc.DatePickerRange(
                id="range-custom",
                display_format="YYYY-MM-DD",
                clearable=True,
                start_date_placeholder_text=t("range.from"),
                end_date_placeholder_text=t("range.to"),
                className="range-custom",
            ),
            dcc.Checklist(
                id="auto-refresh",
                options=[{"label": t("refresh.auto", seconds=refresh_s), "value": "on"}],
                value=["on"],
                className="auto-refresh",
            ),
            dcc.Interval(id="refresh", interval=refresh_s * 1000, n_intervals=0),
        ],
        className="controls",
    )


def _languages() -> html.Nav:
    """The switch: a link to this page in each language (`?lang=`), the current one marked."""
    links = []
    for language in sorted(LANGUAGES, key=LANGUAGE_NAMES.__getitem__, reverse=True):
        marked: dict[str, Any] = {"aria-current": "true"} if language == current() else {}
        links.append(
            html.A(
                LANGUAGE_NAMES[language],
                href=f"?lang={language}",
                lang=language,
                hrefLang=language,
                **marked,
            )
        )
    named: dict[str, Any] = {"aria-label": t("language.switch")}
    return html.Nav(links, id="languages", className="languages", **named)


def build_layout(*, default_range: str, refresh_s: int) -> html.Div:
    """The whole page; every graph starts empty and is filled by its callback."""
    strip: dict[str, Any] = {"aria-label": t("health.title")}
    return html.Div(
        [
            html.Header(
                [
                    html.H1(t("page.title")),
                    _controls(default_range, refresh_s),
                    _languages(),
                ],
                className="top",
            ),
            html.Div(id="health", className="health", **strip),
            html.Div(id="status", className="status", role="status"),
            html.Div(id="kpis", className="kpis"),
            html.Div(
                [_graph(graph_id, title) for graph_id, title in GRAPHS.items()],
                className="grid",
            ),
            _versions(),
            _watch(),
            html.Div(
                [
                    html.H3(t("latest.title")),
                    html.Div(id="latest-table"),
                ],
                className="panel wide",
            ),
        ],
        className="page",
    )
