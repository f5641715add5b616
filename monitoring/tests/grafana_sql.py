"""Grafana's PostgreSQL macros, expanded the way Grafana documents them, to run dashboard SQL.

Only the macros the dashboard uses are known; any other `$__` macro is an error, so a new
one cannot slip into the dashboard untested.
https://grafana.com/docs/grafana/latest/datasources/postgres/query-editor/#macros
"""

from __future__ import annotations

import re
from datetime import datetime

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_FILTER = re.compile(r"\$__timeFilter\(\s*(\w+)\s*\)")
_TIME_GROUP_ALIAS = re.compile(r"\$__timeGroupAlias\(\s*(\w+)\s*,\s*'?(\d+)([smhd])'?\s*\)")


class UnknownMacro(ValueError):
    """The SQL uses a Grafana macro this expander does not know."""


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(sql: str, start: datetime, end: datetime) -> str:
    """Replace `$__timeFilter(col)` and `$__timeGroupAlias(col, 'N<unit>')` for a time range."""
    sql = _TIME_FILTER.sub(
        lambda m: f"{m[1]} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'", sql
    )
    sql = _TIME_GROUP_ALIAS.sub(
        lambda m: (
            f"floor(extract(epoch from {m[1]})/{int(m[2]) * _DURATIONS[m[3]]})"
            f'*{int(m[2]) * _DURATIONS[m[3]]} AS "time"'
        ),
        sql,
    )
    leftover = re.search(r"\$__\w+", sql)
    if leftover:
        raise UnknownMacro(f"{leftover[0]} is not expanded by this test helper")
    return sql
