"""Retrain on consented feedback: `python -m ml.retrain` (`make retrain`).

Exports the consented, labelled photos from DATABASE_URL, trains exactly as `ml.train` does on
the datasets' `train/` folders plus those photos, scores the candidate and the registry's
active model on a gate set that is never trained on (default: the datasets' `val/` folders),
and registers the candidate as the shadow only when an exact one-sided McNemar test says it
is better at `--level`.

Exit status: 0 when the run completed, whether the candidate was registered or not (`registered`
in the output says which, and why); 1 when it could not run (no active model, a gate set that
overlaps the training photos, an unknown version…); 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from catdog.model import Classifier, ModelCard
from ml.card import LABELS, NAME
from ml.dataset import LabelledImage, fingerprint, list_labelled
from ml.gate import TEST, compare
from ml.reference import write_reference
from ml.sources import FeedbackPhoto, TrainingSource, base_source, feedback_source, file_hashes
from ml.train import (
    KAGGLE_DATA,
    REPO_ROOT,
    TrainingOptions,
    add_data_options,
    add_training_options,
    dataset_roots,
    fit_model,
    neither_figures,
    validate,
)
from services.common.cli import run_cli
from services.common.notify import send
from services.feedback.export_photos import ExportSummary, export_photos
from services.inference.registry import (
    VERSION_RULE,
    Registry,
    RegistryError,
    announcement,
    local_actor,
)
from services.inference.settings import RegistrySettings

logger = logging.getLogger(__name__)

CACHE_DIR = REPO_ROOT / "ml" / ".cache"
WORK_DIR = CACHE_DIR / "retrain"
RETRAIN_MARK = "+retrain."
FEEDBACK_DATA = " plus the photos users consented to keep, labelled by their feedback"


class RetrainError(Exception):
    """The run cannot go on; the message says why."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.retrain",
        description="Retrain the model on the base training photos plus the consented, labelled "
        "feedback photos, compare it with the registry's active model on a gate set that is "
        "never trained on, and register it as the shadow only if it is significantly better. "
        "Exit status 0 whether or not it registered (see `registered`), 1 when it cannot run. "
        "Needs requirements/model.txt installed.",
    )
    parser.add_argument("--database-url", help="PostgreSQL DSN (default: $DATABASE_URL)")
    parser.add_argument(
        "--store-dir", type=Path, help="the registry's model store (default: $MODEL_STORE_DIR)"
    )
    add_data_options(parser)
    parser.add_argument(
        "--gate",
        type=Path,
        action="append",
        help="folder with cat/ and dog/ that both models are scored on, repeatable "
        "(default: val/ of each dataset folder)",
    )
    parser.add_argument(
        "--level",
        type=float,
        default=0.05,
        help="significance level of the one-sided exact McNemar test (0.05)",
    )
    parser.add_argument(
        "--version",
        help=f"the candidate's version (default: the active one's +retrain.<UTC time>, "
        f"e.g. 2.0.0{RETRAIN_MARK}20250101T120000Z)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help=f"where the feedback export and the candidate go "
        f"(default: {WORK_DIR.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--keep-export",
        action="store_true",
        help="keep the exported photos in WORK_DIR/feedback after the run (the next run "
        "removes those erased meanwhile); by default they are deleted when training ends",
    )
    parser.add_argument("--actor", help="who registers, for model_events (default: user@host)")
    parser.add_argument("--json", action="store_true", help="print one JSON object for machines")
    add_training_options(parser, cache_dir=CACHE_DIR)
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data or set CV_DATASET_DIR")
    if not 0.0 < args.level < 0.5:
        parser.error("--level must be between 0 and 0.5")
    if args.version is not None and not VERSION_RULE.fullmatch(args.version):
        parser.error("--version must be letters, digits and . _ + - (at most 64)")
    return args


def next_version(parent: str, now: datetime) -> str:
    """`<parent>+retrain.<UTC time>`; a parent that was itself retrained keeps one mark."""
    stamp = f"{RETRAIN_MARK}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    base = parent.split(RETRAIN_MARK)[0]
    return base[: 64 - len(stamp)] + stamp


def gate_name(folder: Path) -> str:
    """`<dataset>/val`: the folder without the machine-specific prefix."""
    resolved = folder.resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def describe_gate(sets: dict[str, list[LabelledImage]]) -> list[dict[str, Any]]:
    """What the gate set is, for the card."""
    return [
        {
            "folder": name,
            "cats": sum(1 for item in items if item.label == 0),
            "dogs": sum(1 for item in items if item.label == 1),
            "data_sha256": fingerprint(items),
        }
        for name, items in sets.items()
    ]


def erased_meanwhile(database_url: str, photos: Sequence[FeedbackPhoto]) -> list[str]:
    """Prediction ids whose photo left the database after the export (erased, consent
    withdrawn or purged): a candidate trained on them must not be registered."""
    ids = [photo.prediction_id for photo in photos]
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT prediction_id::text FROM prediction_photos WHERE prediction_id = ANY(%s)",
            (ids,),
        ).fetchall()
    present = {row[0] for row in rows}
    return [prediction_id for prediction_id in ids if prediction_id not in present]


def export_feedback(
    database_url: str, folder: Path, gate_hashes: frozenset[str]
) -> tuple[ExportSummary, TrainingSource, list[FeedbackPhoto]]:
    """Export, then read the export as a training source (gate duplicates left out)."""
    summary = export_photos(database_url, folder)
    source, excluded = feedback_source(folder, exclude_sha256=gate_hashes)
    return summary, source, excluded


def make_shadow(registry: Registry, model: Path, actor: str, reason: str) -> dict[str, Any]:
    """Register the candidate and make it the shadow (a previous shadow goes back to
    `registered`); announced like every role change the registry CLI makes."""
    version = registry.register(model, actor=actor).version
    change = registry.shadow(version, actor=actor, reason=reason)
    announced = asyncio.run(send(*announcement(change)))
    return {"registered": True, "role_change": change.as_dict(), "announced": announced}


def retrain(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; returns what it did."""
    from ml.evaluate import evaluate

    started = time.monotonic()
    settings = RegistrySettings()
    database_url = args.database_url or settings.database_url
    store_dir = args.store_dir or settings.model_store_dir
    registry = Registry(database_url, store_dir)
    active = registry.serving().get("active")
    if active is None:
        raise RetrainError(
            "the registry has no active model to compare with: start the inference service "
            "once (it registers MODEL_PATH) or promote a version"
        )
    version = args.version or next_version(active.version, datetime.now(UTC))
    if any(known.version == version for known in registry.versions()):
        raise RetrainError(f"version {version} is already in the registry: give --version")

    roots = dataset_roots(args.data, args.extra_data)
    gate_dirs = args.gate or [root / "val" for root in roots]
    gate_sets = {gate_name(folder): list_labelled(folder, LABELS) for folder in gate_dirs}
    gate_hashes = frozenset(file_hashes([item for items in gate_sets.values() for item in items]))
    base = [base_source(root) for root in roots]
    if file_hashes([item for source in base for item in source.items]) & gate_hashes:
        raise RetrainError("the gate set shares photos with the training folders: choose another")

    export_dir = args.work_dir / "feedback"
    out = args.work_dir / "candidate" / f"{NAME}.onnx"
    try:
        summary, feedback, excluded = export_feedback(database_url, export_dir, gate_hashes)
        logger.info("feedback: %d cat, %d dog photos", feedback.count(0), feedback.count(1))
        fitted = fit_model(
            [*base, feedback], out, TrainingOptions.from_args(args), KAGGLE_DATA + FEEDBACK_DATA
        )
    finally:
        if not args.keep_export:
            shutil.rmtree(export_dir, ignore_errors=True)
    assert feedback.photos is not None
    fields = fitted.fields
    fields["parent"] = {"version": active.version, "name": active.name, "sha256": active.sha256}
    ModelCard.write(out, fields, name=NAME, version=version, labels=LABELS)

    candidate = Classifier(out, intra_op_threads=args.threads)
    current = Classifier(active.path(store_dir), intra_op_threads=args.threads)
    path_roots = [*roots, *(folder.resolve().parent for folder in gate_dirs)]
    validation = validate(candidate, gate_sets, path_roots, fitted.temperature)
    result = compare(
        list(validation.evaluations.values()),
        [evaluate(current, items) for items in gate_sets.values()],
        args.level,
    )
    erased = erased_meanwhile(database_url, feedback.photos)
    register = result.passed and not erased
    reason = result.reason()
    if erased:
        reason = f"{len(erased)} feedback photo(s) were erased while it trained: run it again"

    fields["validation"] = validation.figures
    fields["gate"] = {
        "description": "photos never trained on (feedback photos with the same bytes are "
        "left out of training), scored by the candidate and the parent",
        "sets": describe_gate(gate_sets),
        "parent_version": active.version,
        **result.as_dict(),
    }
    fields["retraining"] = {
        "feedback_export": asdict(summary),
        "excluded_as_gate_duplicates": [photo.as_dict() for photo in excluded],
    }
    if register:
        # Only a model that will serve is worth the extra minute on the non-pet photos and the
        # drift reference (its Kaggle training photos: the feedback export is gone by now).
        fields["neither_check"] = neither_figures(candidate)
        fields["drift_reference"] = write_reference(
            candidate, [item for source in base for item in source.items], seed=args.seed
        )
    ModelCard.write(out, fields, name=NAME, version=version, labels=LABELS)

    outcome: dict[str, Any] = {
        "registered": False,
        "version": version,
        "parent": active.version,
        "reason": reason,
        "model": str(out),
        "gate": fields["gate"],
        "training": [
            {key: value for key, value in entry.items() if key != "photos"}
            for entry in fields["training"]["sources"]
        ],
        "feedback": {
            **asdict(summary),
            "trained_on": len(feedback.photos),
            "excluded_as_gate_duplicates": len(excluded),
            "erased_while_training": erased,
        },
    }
    if register:
        actor = args.actor or local_actor("retrain")
        outcome.update(make_shadow(registry, out, actor, f"retrained on feedback: {reason}"))
    outcome["seconds"] = round(time.monotonic() - started, 1)
    return outcome


def report(outcome: dict[str, Any]) -> str:
    """The run for people."""
    gate = outcome["gate"]
    feedback = outcome["feedback"]
    lines = ["training photos:"]
    lines += [
        f"  {entry['source']:<24} {entry['cats']:>5} cat {entry['dogs']:>5} dog"
        for entry in outcome["training"]
    ]
    lines += [
        f"feedback export: {feedback['written']} written, {feedback['unchanged']} unchanged, "
        f"{feedback['removed']} removed (erased or relabelled), {feedback['skipped']} unreadable; "
        f"{feedback['excluded_as_gate_duplicates']} left out as copies of gate photos",
        f"candidate {outcome['version']}: {outcome['model']}",
        f"gate ({', '.join(item['folder'] for item in gate['sets'])}; {gate['photos']} photos):",
        f"  candidate accuracy {gate['candidate_accuracy']:.2%}, "
        f"active {outcome['parent']} {gate['active_accuracy']:.2%}",
        f"  candidate right, active wrong: {gate['candidate_right_active_wrong']}; "
        f"active right, candidate wrong: {gate['active_right_candidate_wrong']}",
        f"  {TEST}: p = {gate['p_value']:.3g} (level {gate['level']})",
    ]
    if outcome["registered"]:
        lines.append(f"registered {outcome['version']} as the shadow: {outcome['reason']}")
    else:
        lines.append(f"not registered: {outcome['reason']}")
    lines.append(f"took {outcome['seconds']} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print; see the module's docstring for the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        outcome = retrain(args)
    except (RetrainError, RegistryError, FileNotFoundError, psycopg.Error) as error:
        if args.json:
            print(json.dumps({"registered": False, "error": str(error)}))
        print(f"cannot retrain: {error}", file=sys.stderr)
        return 1
    print(json.dumps(outcome, indent=2, default=str) if args.json else report(outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
