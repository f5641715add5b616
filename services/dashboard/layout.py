"""The page: range selector and refresh on top, headline numbers, then the graphs and table."""

from __future__ import annotations

from dash import dcc, html

from services.dashboard.window import CUSTOM, PRESET_LABELS

# Graph ids in page order, with their titles; callbacks and tests refer to these ids.
GRAPHS = {
    "graph-traffic": "Predictions over time, by class",
    "graph-versions": "Model versions in use",
    "graph-latency-series": "Inference time over time (p50 / p95 / max)",
    "graph-latency-histogram": "Inference time distribution",
    "graph-confidence": "Confidence distribution (dashed line: low-confidence threshold)",
    "graph-low-confidence": "Share of low-confidence answers",
    "graph-satisfaction": "User satisfaction from feedback (band: 95% interval; bars: feedbacks)",
    "graph-consent": "Share of predictions with consent to keep data",
}
VERSION_GRAPH = "graph-version-accuracy"
VERSIONS_NOTE = (
    "Accuracy counts the answers users labelled: the true label they gave, else the answer "
    "when they were satisfied, else the other class. A shadow scored the same photos without "
    "its answers being shown: its share is of the answers it scored, its agreement how often "
    "it gave the answer the user got."
)

WATCH_GRAPHS = {
    "graph-drift": "Embedding drift (solid: score; dashed: the score beyond which p < DRIFT_ALPHA)",
    "graph-estimated-accuracy": "Accuracy estimated from confidence (band: 95%) and from feedback",
    "graph-reliability": "Reliability of labelled answers, newest check (diagonal: calibrated)",
}
WATCH_NOTE = (
    "Every served version is checked on an interval: its newest window of answers is compared "
    "with the photos it was trained on (MMD² of the backbone's embeddings, permutation p-value), "
    "and its accuracy is estimated from its calibrated confidence alone. Where users labelled "
    "answers, the estimate on those answers is set against what they said: a gap means the "
    "calibration itself has drifted."
)


def _graph(graph_id: str, title: str, class_name: str = "panel") -> html.Div:
    return html.Div(
        [
            html.H3(title),
            dcc.Loading(
                dcc.Graph(
                    id=graph_id,
                    config={"displaylogo": False, "responsive": True},
                    style={"height": "280px"},
                ),
                type="dot",
                delay_show=400,
            ),
        ],
        className=class_name,
    )


def _section(section_id: str, title: str, note: str, below: html.Div) -> html.Section:
    """A titled section: its table (`<id>-table`, filled by a callback) and note, then graphs."""
    return html.Section(
        [
            html.H2(title),
            html.Div(
                [html.Div(id=f"{section_id}-table"), html.P(note, className="note")],
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
        "Model versions",
        VERSIONS_NOTE,
        _graph(
            VERSION_GRAPH,
            "Feedback accuracy by model version (error bars: 95% Wilson interval)",
            "panel wide",
        ),
    )


def _watch() -> html.Section:
    """Is each version going wrong before users say so: drift, label-free accuracy, calibration."""
    return _section(
        "watch",
        "Model watch",
        WATCH_NOTE,
        html.Div(
            [_graph(graph_id, title) for graph_id, title in WATCH_GRAPHS.items()],
            className="grid wide",
        ),
    )


def _controls(default_range: str, refresh_s: int) -> html.Div:
    options = [{"label": label, "value": key} for key, label in PRESET_LABELS.items()]
    options.append({"label": "Custom", "value": CUSTOM})
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
                start_date_placeholder_text="from (UTC)",
                end_date_placeholder_text="to (UTC)",
                className="range-custom",
            ),
            dcc.Checklist(
                id="auto-refresh",
                options=[{"label": f"Auto-refresh every {refresh_s} s", "value": "on"}],
                value=["on"],
                className="auto-refresh",
            ),
            dcc.Interval(id="refresh", interval=refresh_s * 1000, n_intervals=0),
        ],
        className="controls",
    )


def build_layout(*, default_range: str, refresh_s: int) -> html.Div:
    """The whole page; every graph starts empty and is filled by its callback."""
    return html.Div(
        [
            html.Header(
                [html.H1("Cat or dog — monitoring"), _controls(default_range, refresh_s)],
                className="top",
            ),
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
                    html.H3("Latest predictions (identifiers only with consent)"),
                    html.Div(id="latest-table"),
                ],
                className="panel wide",
            ),
        ],
        className="page",
    )
