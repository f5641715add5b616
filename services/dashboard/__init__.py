"""The monitoring dashboard: Dash/Plotly pages over the `monitoring` table, aggregated in SQL."""
