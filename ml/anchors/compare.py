"""Our accuracy estimate and drift test next to NannyML's CBPE and Evidently's embedding drift.

`python -m ml.anchors --data DIR [--extra-data DIR]` builds the windows (`ml.anchors.windows`),
computes our side here with the functions the service runs (`catdog.drift`),
hands the same windows to `.venv-anchors` for theirs (`ml.anchors.theirs`), and prints both
side by side (`--json` for machines).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catdog.drift import DEFAULT_PERMUTATIONS, estimate_accuracy, mmd_test
from catdog.model import Classifier
from ml import drift_check
from ml.anchors import exchange as exchange_file
from ml.anchors import windows as windows_module
from ml.anchors.exchange import Exchange
from ml.card import DEFAULT_MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]
ANCHORS_PYTHON = REPO_ROOT / ".venv-anchors" / "bin" / "python"
ALPHA = 0.01  # the service's DRIFT_ALPHA default
OURS = "ours"


@dataclass(frozen=True)
class AccuracyRow:
    """One labelled window's accuracy: the real one and both label-free estimates."""

    window: str
    photos: int
    real: float
    ours: float
    ours_stderr: float
    nannyml: float
    nannyml_realized: float  # NannyML's own count of right answers, a check on the exchange

    @property
    def difference(self) -> float:
        """Ours minus NannyML's, as a share (0.01 is one percentage point)."""
        return self.ours - self.nannyml


@dataclass(frozen=True)
class Decision:
    """One drift test's answer on one window."""

    score: float
    drift: bool


@dataclass(frozen=True)
class DriftRow:
    """One window against the drift reference: our test and each of Evidently's methods."""

    window: str
    photos: int
    ours: Decision
    p_value: float
    evidently: dict[str, Decision]


@dataclass(frozen=True)
class Comparison:
    """Everything the report prints."""

    alpha: float
    permutations: int
    accuracy: tuple[AccuracyRow, ...]
    nannyml_reference_photos: int
    nannyml_reference_roc_auc: float
    nannyml_calibrated: bool
    drift_reference: int
    drift: tuple[DriftRow, ...]
    methods: dict[str, str]  # Evidently method key -> what it does
    undrifted_pool: int
    false_alarms: dict[str, list[bool]]  # "ours" and each Evidently method, per repeated window
    report: dict[str, Any]  # Evidently's Report on one window, to check the direct calls
    versions: dict[str, str]

    def called(self, method: str) -> int:
        """How many of the repeated undrifted windows `method` called drift."""
        return sum(self.false_alarms[method])


def theirs(exchange: Exchange, python: Path = ANCHORS_PYTHON) -> dict[str, Any]:
    """NannyML's and Evidently's answers on `exchange`, computed by `python`."""
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run `make anchors-deps`")
    with tempfile.TemporaryDirectory(prefix="anchors-") as folder:
        windows, answers = Path(folder) / "windows.npz", Path(folder) / "answers.json"
        exchange_file.save(exchange, windows)
        done = subprocess.run(
            # absolute(), not resolve(): the venv's python is a symlink that must stay one.
            [str(python.absolute()), "-m", "ml.anchors.theirs", str(windows), str(answers)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"ml.anchors.theirs failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        result: dict[str, Any] = json.loads(answers.read_text())
        return result


def compare(
    exchange: Exchange,
    answers: dict[str, Any],
    *,
    alpha: float = ALPHA,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> Comparison:
    """Our side on the same windows, next to `answers` (from `theirs`)."""
    cbpe, evidently = answers["nannyml"], answers["evidently"]
    accuracy = []
    drift = []
    for window in exchange.windows:
        if window.labelled:
            estimate = estimate_accuracy(window.probabilities.max(axis=1))
            theirs_row = cbpe["windows"][window.name]
            accuracy.append(
                AccuracyRow(
                    window.name,
                    len(window.truth),
                    float(np.mean(window.probabilities.argmax(axis=1) == window.truth)),
                    estimate.ratio,
                    estimate.stderr,
                    theirs_row["accuracy"],
                    theirs_row["realized"],
                )
            )
        result = mmd_test(
            exchange.drift_reference,
            window.embedding,
            alpha=alpha,
            permutations=permutations,
            seed=seed,
        )
        drift.append(
            DriftRow(
                window.name,
                len(window.embedding),
                Decision(result.score, result.drifted(alpha)),
                result.p_value,
                {
                    key: Decision(**value)
                    for key, value in evidently["windows"][window.name].items()
                },
            )
        )
    ours_repeats = [
        mmd_test(
            exchange.drift_reference,
            exchange.undrifted_pool[rows],
            alpha=alpha,
            permutations=permutations,
            seed=seed + repeat,
        ).drifted(alpha)
        for repeat, rows in enumerate(exchange.repeat_rows)
    ]
    return Comparison(
        alpha=alpha,
        permutations=permutations,
        accuracy=tuple(accuracy),
        nannyml_reference_photos=cbpe["reference_photos"],
        nannyml_reference_roc_auc=cbpe["reference_roc_auc"],
        nannyml_calibrated=cbpe["calibrated"],
        drift_reference=len(exchange.drift_reference),
        drift=tuple(drift),
        methods=evidently["methods"],
        undrifted_pool=len(exchange.undrifted_pool),
        false_alarms={OURS: ours_repeats, **evidently["repeats"]},
        report=evidently["report"],
        versions=answers["versions"],
    )


def run(
    classifier: Classifier,
    folders: Sequence[Path],
    *,
    python: Path = ANCHORS_PYTHON,
    alpha: float = ALPHA,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    **windows: Any,
) -> Comparison:
    """Build the windows (`windows` goes to `ml.anchors.windows.build`), then compare."""
    exchange = windows_module.build(classifier, folders, seed=seed, **windows)
    return compare(
        exchange, theirs(exchange, python), alpha=alpha, permutations=permutations, seed=seed
    )


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _decision(decision: Decision, method: str) -> str:
    digits = 4 if method.startswith("mmd") else 3  # MMD² is small, an AUC is not
    return f"{decision.score:.{digits}f} {'drift' if decision.drift else '—'}"


def table(comparison: Comparison) -> str:
    """The comparison for people."""
    lines = [
        "Estimated accuracy without labels (real: from the labels, which neither estimate sees)",
        "",
        "window | photos | real | ours ± stderr | NannyML CBPE | |ours − NannyML|",
        "--- | --- | --- | --- | --- | ---",
    ]
    for row in comparison.accuracy:
        lines.append(
            f"{row.window} | {row.photos} | {_percent(row.real)} | {_percent(row.ours)} ± "
            f"{row.ours_stderr:.2%} | {_percent(row.nannyml)} | {100 * abs(row.difference):.3f} pp"
        )
    recalibrated = "recalibrated" if comparison.nannyml_calibrated else "kept"
    lines += [
        f"(CBPE fitted on {comparison.nannyml_reference_photos} labelled held-out photos, "
        f"ROC AUC {comparison.nannyml_reference_roc_auc:.4f}: it {recalibrated} the model's "
        "probabilities)",
        "",
        f"Embedding drift against the {comparison.drift_reference} training-photo embeddings "
        f"(ours: MMD² and permutation p-value, alpha {comparison.alpha}, "
        f"{comparison.permutations} permutations)",
        "",
    ]
    keys = list(comparison.methods)
    header = ["window", "photos", "ours: MMD², p", *(f"Evidently {key}" for key in keys)]
    lines += [" | ".join(header), " | ".join("---" for _ in header)]
    for drift in comparison.drift:
        ours = (
            f"{drift.ours.score:.4f}, p={drift.p_value:.3f} {'drift' if drift.ours.drift else '—'}"
        )
        cells = [_decision(drift.evidently[key], key) for key in keys]
        lines.append(" | ".join([drift.window, str(drift.photos), ours, *cells]))
    repeats = len(comparison.false_alarms[OURS])
    size = comparison.drift[0].photos if comparison.drift else 0
    called = ", ".join(
        f"{'ours' if key == OURS else 'Evidently ' + key} {comparison.called(key)}/{repeats}"
        for key in comparison.false_alarms
    )
    report = comparison.report
    direct = next(row for row in comparison.drift if row.window == report["window"]).evidently
    lines += [
        f"(undrifted windows called drift, {repeats} windows of {size} drawn from "
        f"{comparison.undrifted_pool} held-out photos: {called})",
        f"(Evidently's Report on '{report['window']}' scores classifier {report['classifier']:.4f}"
        f" and mmd {report['mmd']:.4f}; the direct calls above: "
        f"{direct['classifier'].score:.4f} and {direct['mmd'].score:.4f})",
        "",
        *(f"Evidently {key}: {description}" for key, description in comparison.methods.items()),
        "versions: "
        + ", ".join(f"{name} {version}" for name, version in comparison.versions.items()),
    ]
    return "\n".join(lines)


def as_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison for machines."""
    result = asdict(comparison)
    for row, raw in zip(comparison.accuracy, result["accuracy"], strict=True):
        raw["difference"] = row.difference
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.anchors",
        description="Our estimated accuracy and embedding drift test next to NannyML's CBPE and "
        "Evidently's embedding drift, on the same windows of held-out photos.",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the .onnx file")
    parser.add_argument("--data", type=Path, required=True, help="data set with val/<label>/")
    parser.add_argument("--extra-data", type=Path, help="a second data set with val/<label>/")
    parser.add_argument(
        "--reference-photos", type=int, default=100, help="labelled photos for NannyML"
    )
    parser.add_argument("--window", type=int, default=50, help="photos per window")
    parser.add_argument(
        "--shifts",
        default=",".join(drift_check.SHIFTS),
        help=f"comma-separated, of {', '.join(drift_check.SHIFTS)}",
    )
    parser.add_argument("--non-pets", type=int, default=50, help="non-pet photos (0: none)")
    parser.add_argument("--repeats", type=int, default=20, help="undrifted windows drawn again")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="our significance level")
    parser.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--anchors-python",
        type=Path,
        default=ANCHORS_PYTHON,
        help="the interpreter with NannyML and Evidently (`make anchors-deps`)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.shifts.split(","))) - set(drift_check.SHIFTS)
    if unknown:
        parser.error(f"unknown shifts: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print."""
    args = parse_args(argv)
    roots = [args.data] + ([args.extra_data] if args.extra_data else [])
    comparison = run(
        Classifier(args.model),
        [root / "val" for root in roots],
        python=args.anchors_python,
        alpha=args.alpha,
        permutations=args.permutations,
        seed=args.seed,
        reference_photos=args.reference_photos,
        window=args.window,
        shifts=[name for name in args.shifts.split(",") if name],
        non_pets=args.non_pets,
        repeats=args.repeats,
    )
    print(json.dumps(as_json(comparison), indent=2) if args.json else table(comparison))
    return 0
