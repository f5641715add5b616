"""What a user's feedback says a photo really shows, as SQL every service evaluates alike.

The true label when the user gave one, else the answer when they said it was right, else the
other class (there are two). It reads the feedback row as `f` and the prediction it judges as
`m` (`monitoring`); the canary analysis and the dashboard both judge versions by it.
"""

from __future__ import annotations

# The rule itself is the SQL function `feedback_truth` (migration 0103), which the dashboard's
# roll-ups evaluate inside PostgreSQL too.
TRUTH_SQL = "feedback_truth(f.true_label, f.satisfaction, m.prediction_result)"
