"""Panel and query builders of the Grafana dashboard, on Grafana's Python SDK.

Every row module builds its panels with these, so that a panel's size, datasource and target
naming are decided once.
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.builders import common, dashboard, stat, table, timeseries
from grafana_foundation_sdk.builders import prometheus as prom_query
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import BigValueGraphMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# Must match provisioning/datasources/datasources.yml (a test checks it).
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="cv-prometheus")
POSTGRESQL = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="cv-postgresql")


def serving(role: str = "") -> str:
    """The (model_version, role) pairs serving now, from cv_model_info (which says `version`).

    The per-version gauges keep a version's last value after it leaves its role; joining on
    this keeps the panels to the versions that hold the role now.
    """
    selector = f'{{role="{role}"}}' if role else ""
    return (
        f"label_replace(max by (version, role) (cv_model_info{selector} == 1), "
        '"model_version", "$1", "version", "(.*)")'
    )


def per_version_share(part: str, whole: str) -> str:
    """`part / whole` per model version, 0 rather than no data while `part` has no series yet."""
    return (
        f"(sum by (model_version) ({part}) or sum by (model_version) ({whole}) * 0) "
        f"/ sum by (model_version) ({whole})"
    )


class SqlQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (this SDK release has no builder)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "refId": self.ref_id,
            "datasource": POSTGRESQL.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }


class Sql(cogbuilder.Builder[SqlQuery]):
    """Builder of `SqlQuery`, in the SDK's style."""

    def __init__(self, raw_sql: str, *, fmt: str = "table", ref_id: str = "A") -> None:
        self._query = SqlQuery(ref_id, raw_sql.strip(), fmt)

    def build(self) -> SqlQuery:
        """The query."""
        return self._query

    def ref_id(self, ref_id: str) -> Self:
        """Rename the query."""
        self._query.ref_id = ref_id
        return self


def promql(expr: str, legend: str = "", *, ref_id: str = "A", instant: bool = False) -> Any:
    """A Prometheus target."""
    query = (
        prom_query.Dataquery()
        .expr(" ".join(expr.split()))
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
        .legend_format(legend or "__auto")
    )
    return query.instant().format(PromQueryFormat.TABLE) if instant else query.range()


def targets(*queries: Any) -> list[Any]:
    """Name queries A, B, C... in order."""
    return [query.ref_id(chr(ord("A") + index)) for index, query in enumerate(queries)]


def graph(
    title: str, description: str, *queries: Any, unit: str = "short", width: int = 12
) -> timeseries.Panel:
    """A time series panel."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(targets(*queries))
        .unit(unit)
        .height(8)
        .span(width)
    )


def single(
    title: str,
    description: str,
    query: Any,
    *,
    unit: str,
    steps: list[tuple[float | None, str]],
    width: int = 6,
) -> stat.Panel:
    """A stat panel coloured by thresholds."""
    thresholds = (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(targets(query))
        .unit(unit)
        .thresholds(thresholds)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(5)
        .span(width)
    )


def grid(title: str, description: str, query: Any, *, datasource: Any, width: int) -> table.Panel:
    """A table panel."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets([query])
        .height(9)
        .span(width)
    )


def sql_graph(title: str, description: str, query: Sql, *, unit: str) -> timeseries.Panel:
    """A time series panel fed by PostgreSQL."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(POSTGRESQL)
        .targets([query])
        .unit(unit)
        .height(9)
        .span(12)
    )
