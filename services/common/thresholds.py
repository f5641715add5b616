"""Thresholds several services, the alert rules and the dashboards must agree on.

Not settings: the low-confidence share is read from a histogram bucket boundary of
`cv_model_confidence` by the recording rules, so a threshold changed in one place only would
make the services and Prometheus disagree (`monitoring/tests/test_objectives.py` checks them).
"""

from __future__ import annotations

# Answers whose winning probability is under this count as low-confidence.
LOW_CONFIDENCE = 0.8
