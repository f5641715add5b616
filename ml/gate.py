"""Whether a candidate model beats the active one on the same photos by more than noise.

Both models answer every gate photo; only the photos on which they disagree about being right
carry information (the discordant pairs). Under "neither is better", each discordant pair goes
either way with probability 1/2: the exact McNemar test. It is one-sided, because only a
candidate that is better is worth registering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

from ml.evaluate import Evaluation

TEST = "exact McNemar test, one-sided (candidate better), on the paired right/wrong outcomes"


def one_sided_p(wins: int, losses: int) -> float:
    """P(at least `wins` of the `wins + losses` discordant pairs favour the candidate) when
    each favours it with probability 1/2."""
    if wins == 0:
        return 1.0
    if wins > losses:
        # statsmodels doubles the smaller tail, P(X <= losses), which here equals P(X >= wins).
        return float(mcnemar([[0, wins], [losses, 0]], exact=True).pvalue) / 2
    # P(X >= wins) = 1 - P(X <= wins - 1); that lower tail is under 1/2, so never capped.
    lower = float(mcnemar([[0, wins - 1], [losses + 1, 0]], exact=True).pvalue) / 2
    return 1.0 - lower


@dataclass(frozen=True)
class GateResult:
    """The paired comparison of the two models on the gate photos."""

    photos: int
    candidate_correct: int
    active_correct: int
    candidate_only: int  # photos the candidate gets right and the active model wrong
    active_only: int  # and the other way round
    p_value: float
    level: float
    unpaired: int  # photos one model could not read: left out of the comparison

    @property
    def passed(self) -> bool:
        """Better by more than noise at `level`."""
        return self.p_value <= self.level

    def as_dict(self) -> dict[str, Any]:
        """Card and JSON form."""
        return {
            "test": TEST,
            "level": self.level,
            "photos": self.photos,
            "candidate_accuracy": round(self.candidate_correct / self.photos, 5),
            "active_accuracy": round(self.active_correct / self.photos, 5),
            "candidate_right_active_wrong": self.candidate_only,
            "active_right_candidate_wrong": self.active_only,
            "p_value": self.p_value,
            "passed": self.passed,
            "unpaired_photos": self.unpaired,
        }

    def reason(self) -> str:
        """Why the candidate is or is not registered, in one sentence."""
        figures = (
            f"{self.candidate_correct / self.photos:.2%} against "
            f"{self.active_correct / self.photos:.2%} on {self.photos} gate photos, "
            f"{self.candidate_only} won and {self.active_only} lost, p = {self.p_value:.3g}"
        )
        if self.passed:
            return f"the candidate is better: {figures} <= {self.level}"
        return f"the candidate is not significantly better: {figures} > {self.level}"


def paired_right(candidate: Evaluation, active: Evaluation) -> tuple[np.ndarray, np.ndarray, int]:
    """Right/wrong of each model on the photos both read, and how many only one read."""
    active_right = dict(zip(active.paths, active.predicted == active.truth, strict=True))
    rows = [row for row, path in enumerate(candidate.paths) if path in active_right]
    candidate_right = (candidate.predicted == candidate.truth)[rows]
    other = np.array([active_right[candidate.paths[row]] for row in rows], dtype=bool)
    unpaired = len(candidate.paths) + len(active.paths) - 2 * len(rows)
    return candidate_right, other, unpaired


def compare(
    candidate: Sequence[Evaluation], active: Sequence[Evaluation], level: float
) -> GateResult:
    """One test over every gate folder together (one decision, one level)."""
    pairs = [paired_right(ours, theirs) for ours, theirs in zip(candidate, active, strict=True)]
    ours = np.concatenate([pair[0] for pair in pairs])
    theirs = np.concatenate([pair[1] for pair in pairs])
    if not len(ours):
        raise ValueError("no gate photo was read by both models")
    wins = int((ours & ~theirs).sum())
    losses = int((~ours & theirs).sum())
    return GateResult(
        photos=len(ours),
        candidate_correct=int(ours.sum()),
        active_correct=int(theirs.sum()),
        candidate_only=wins,
        active_only=losses,
        p_value=one_sided_p(wins, losses),
        level=level,
        unpaired=sum(pair[2] for pair in pairs),
    )
