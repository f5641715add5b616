"""Our label-free checks measured against the reference implementations they follow.

The service estimates accuracy the way NannyML's CBPE does and tests embedding drift with an
MMD test, as Evidently's embedding drift can. This package runs both libraries on the very
windows our own functions see and puts the answers side by side (`python -m ml.anchors`).

The two libraries cannot live in the project's environment (they need plotly < 6 and
pandas < 3), so the work is split across two interpreters:
- `windows` and `compare` run in `.venv`: they decode and shift the photos, run the served
  model, and compute our side with `catdog.drift`;
- `theirs` runs in `.venv-anchors` (`make anchors-deps`) and imports only NumPy, pandas and
  the two libraries;
- `exchange` is the one file format both read: every window's arrays in one .npz, no pickles.
"""
