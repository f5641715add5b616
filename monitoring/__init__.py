"""Monitoring as code: Prometheus, alert rules, Alertmanager and Grafana, with their renderers."""
