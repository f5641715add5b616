"""The windows, as the two interpreters exchange them: one .npz of plain arrays.

NumPy only, so that both `.venv` and `.venv-anchors` import it; the file holds no pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

UNLABELLED = -1  # `truth` of a photo that is neither a cat nor a dog


@dataclass(frozen=True)
class Window:
    """Photos the model answered, as the monitoring sees them."""

    name: str
    embedding: np.ndarray  # [n, d] the backbone's pooled features
    probabilities: np.ndarray  # [n, 2] calibrated, in the order of the card's labels
    truth: np.ndarray  # [n] label index, UNLABELLED where no label applies

    @property
    def labelled(self) -> bool:
        """Every photo has a true label, so accuracy means something here."""
        return bool(len(self.truth)) and bool(np.all(self.truth != UNLABELLED))


@dataclass(frozen=True)
class Exchange:
    """Everything both sides test, and nothing they could compute differently."""

    drift_reference: np.ndarray  # [m, d] the model's training photos' embeddings
    labelled_reference: Window  # held-out labelled photos: NannyML's reference period
    windows: tuple[Window, ...]  # the analysis windows, shifted or not
    undrifted_pool: np.ndarray  # [p, d] embeddings of held-out photos as they came
    repeat_rows: np.ndarray  # [r, n] rows of the pool: the undrifted windows drawn again


def save(exchange: Exchange, path: Path) -> None:
    """Write `exchange` to `path` (.npz)."""
    arrays: dict[str, np.ndarray] = {
        "drift_reference": exchange.drift_reference,
        "undrifted_pool": exchange.undrifted_pool,
        "repeat_rows": exchange.repeat_rows,
        "names": np.array([window.name for window in exchange.windows], dtype=np.str_),
    }
    for key, window in [("reference", exchange.labelled_reference), *enumerate(exchange.windows)]:
        arrays[f"embedding_{key}"] = window.embedding
        arrays[f"probabilities_{key}"] = window.probabilities
        arrays[f"truth_{key}"] = window.truth
    # The stubs fear a key named allow_pickle among the arrays; none is.
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load(path: Path) -> Exchange:
    """Read what `save` wrote."""
    with np.load(path, allow_pickle=False) as data:

        def window(key: str | int, name: str) -> Window:
            return Window(
                name,
                data[f"embedding_{key}"],
                data[f"probabilities_{key}"],
                data[f"truth_{key}"],
            )

        return Exchange(
            drift_reference=data["drift_reference"],
            labelled_reference=window("reference", "reference"),
            windows=tuple(window(index, str(name)) for index, name in enumerate(data["names"])),
            undrifted_pool=data["undrifted_pool"],
            repeat_rows=data["repeat_rows"],
        )
