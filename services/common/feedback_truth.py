"""What a user's feedback says a photo really shows, as SQL every service evaluates alike.

The true label when the user gave one, else the answer when they said it was right, else the
other class (there are two). It reads the feedback row as `f` and the prediction it judges as
`m` (`monitoring`); the canary analysis and the dashboard both judge versions by it.
"""

from __future__ import annotations

TRUTH_SQL = """COALESCE(f.true_label,
         CASE WHEN f.satisfaction = 'satisfied' THEN m.prediction_result
              WHEN m.prediction_result = 'cat' THEN 'dog' ELSE 'cat' END)"""
