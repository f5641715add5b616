"""The model registry against a real PostgreSQL: roles, their history, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psycopg
import pytest

from catdog.model import file_sha256, reference_path_for
from services.inference import registry_cli
from services.inference.registry import (
    InvalidModel,
    Registry,
    RegistryError,
    UnknownVersion,
    announcement,
)
from tests.support.tiny_model import build_tiny_model


@pytest.fixture
def registry(database_url: str, model_store: Path) -> Registry:
    return Registry(database_url, model_store)


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    return {
        version: build_tiny_model(tmp_path / version, version=version, inverted=version == "v3")
        for version in ("v1", "v2", "v3")
    }


def roles(registry: Registry) -> dict[str, str]:
    return {item.version: item.role for item in registry.versions()}


def test_register_copies_model_and_card_into_the_store(
    registry: Registry, models: dict[str, Path], model_store: Path
) -> None:
    change = registry.register(models["v1"], actor="test")
    assert (change.from_role, change.to_role) == (None, "registered")
    stored = registry.get("v1")
    assert stored.path(model_store).read_bytes() == models["v1"].read_bytes()
    assert json.loads(stored.path(model_store).with_suffix(".json").read_text())["version"] == "v1"
    assert stored.card["sha256"] == stored.sha256
    # The same file again changes nothing; the same version with other weights is refused.
    assert registry.register(models["v1"], actor="test").reason == "same"
    other = build_tiny_model(models["v3"].parent / "again", version="v1", inverted=True)
    with pytest.raises(RegistryError, match="already registered with another file"):
        registry.register(other, actor="test")


def with_reference(model: Path, rows: np.ndarray) -> Path:
    """Give a model a drift reference named in its card."""
    reference = reference_path_for(model)
    np.save(reference, rows.astype(np.float16))
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["drift_reference"] = {"file": reference.name, "sha256": file_sha256(reference)}
    card_path.write_text(json.dumps(card))
    return model


def test_the_drift_reference_travels_with_its_model_and_must_match_its_card(
    registry: Registry, models: dict[str, Path], model_store: Path
) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    registry.register(with_reference(models["v1"], rows), actor="test")
    stored = reference_path_for(registry.get("v1").path(model_store))
    assert np.array_equal(np.load(stored), rows.astype(np.float16))

    with_reference(models["v2"], rows)
    np.save(reference_path_for(models["v2"]), rows[:2].astype(np.float16))  # not what was hashed
    with pytest.raises(InvalidModel, match="does not match its card's sha256"):
        registry.register(models["v2"], actor="test")


def test_a_card_that_does_not_match_its_file_is_refused(
    registry: Registry, models: dict[str, Path]
) -> None:
    card_path = models["v2"].with_suffix(".json")
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "sha256": "0" * 64}))
    with pytest.raises(RegistryError, match="its card says"):
        registry.register(models["v2"], actor="test")
    assert registry.versions() == []


def test_roles_move_as_documented_and_every_change_is_recorded(
    registry: Registry, models: dict[str, Path]
) -> None:
    assert registry.bootstrap(models["v1"], actor="replica-a") is not None
    assert registry.bootstrap(models["v2"], actor="replica-b") is None  # already has an active
    for version in ("v2", "v3"):
        registry.register(models[version], actor="test")
    registry.shadow("v2", actor="test")
    change = registry.shadow("v3", actor="test", reason="newer")
    assert change.side_effects == (("v2", "shadow", "registered"),)
    registry.canary("v3", 0.25, actor="test")
    assert roles(registry) == {"v1": "active", "v2": "registered", "v3": "canary"}
    assert registry.get("v3").canary_share == 0.25
    with pytest.raises(RegistryError, match="active model"):
        registry.retire("v1", actor="test")
    with pytest.raises(RegistryError, match="between 0 and 1"):
        registry.canary("v2", 1.0, actor="test")
    with pytest.raises(UnknownVersion):
        registry.promote("v9", actor="test")

    promoted = registry.promote("v3", actor="test")
    assert promoted.side_effects == (("v1", "active", "retired"),)
    assert roles(registry) == {"v1": "retired", "v2": "registered", "v3": "active"}
    assert registry.get("v3").canary_share is None

    # No canary: rollback gives the active role back to the version that held it before.
    back = registry.rollback(actor="test", reason="v3 misbehaves")
    assert (back.version, back.to_role) == ("v1", "active")
    assert roles(registry) == {"v1": "active", "v2": "registered", "v3": "retired"}
    # With a canary, rollback retires the canary and leaves the active model alone.
    registry.canary("v2", 0.5, actor="test")
    assert registry.rollback(actor="test").version == "v2"
    assert roles(registry)["v1"] == "active"

    history = [(e["version"], e["from_role"], e["to_role"]) for e in registry.events(100)]
    assert history[-3:] == [  # newest first
        ("v2", None, "registered"),
        ("v1", "registered", "active"),
        ("v1", None, "registered"),
    ]
    assert history[0] == ("v2", "canary", "retired")
    assert registry.events(100)[0]["actor"] == "test"


def test_an_automatic_rollback_never_retires_what_a_person_changed_meanwhile(
    registry: Registry, models: dict[str, Path]
) -> None:
    registry.bootstrap(models["v1"], actor="test")
    registry.register(models["v2"], actor="test")
    registry.canary("v2", 0.5, actor="test")
    registry.promote("v2", actor="person")
    with pytest.raises(RegistryError, match="no longer canary"):
        registry.retire("v2", actor="canary-analysis", only_from="canary")
    assert roles(registry)["v2"] == "active"


def test_concurrent_promotions_leave_exactly_one_active_model(
    registry: Registry, models: dict[str, Path], database_url: str
) -> None:
    registry.bootstrap(models["v1"], actor="test")
    for version in ("v2", "v3"):
        registry.register(models[version], actor="test")
    with ThreadPoolExecutor(6) as pool:
        list(
            pool.map(
                lambda version: registry.promote(version, actor="race"), ["v2", "v3", "v1"] * 4
            )
        )
    with psycopg.connect(database_url) as connection:
        (active,) = connection.execute(
            "SELECT count(*) FROM model_versions WHERE role = 'active'"
        ).fetchone()
    assert active == 1


def test_the_announcement_says_what_changed_and_why(
    registry: Registry, models: dict[str, Path]
) -> None:
    registry.bootstrap(models["v1"], actor="test")
    registry.register(models["v2"], actor="test")
    title, message, level = announcement(
        registry.canary("v2", 0.1, actor="alice", reason="try the retrained head")
    )
    assert title == "model v2: registered → canary"
    assert "answers 10% of requests" in message
    assert "try the retrained head" in message
    assert "By alice." in message
    assert level == "info"


def test_cli_runs_every_command_and_prints_json(
    database_url: str, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert registry_cli.main(["register", str(models["v1"])]) == 0
    assert registry_cli.main(["promote", "v1"]) == 0
    assert registry_cli.main(["register", str(models["v2"])]) == 0
    assert registry_cli.main(["canary", "v2", "--share", "0.1"]) == 0
    capsys.readouterr()
    assert registry_cli.main(["--json", "list"]) == 0
    listed = {row["version"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["v1"]["role"] == "active"
    assert listed["v2"]["canary_share"] == 0.1
    assert registry_cli.main(["list"]) == 0
    table = capsys.readouterr().out
    assert "v2" in table and "canary" in table and "10%" in table
    assert registry_cli.main(["promote", "nope"]) == 1
    assert "no model version 'nope'" in capsys.readouterr().err
    assert registry_cli.main(["--json", "rollback", "--reason", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["to_role"] == "retired"


def test_cli_help_lists_the_commands() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "services.inference.registry_cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("list", "register", "shadow", "canary", "promote", "rollback"):
        assert command in shown


def test_cli_says_when_the_database_is_unreachable(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    assert registry_cli.main(["list"]) == 2
    assert "cannot reach PostgreSQL" in capsys.readouterr().err


def test_replicas_bootstrapping_together_make_exactly_one_model_active(
    registry: Registry, models: dict[str, Path]
) -> None:
    # Two replicas of different images start against an empty registry at the same moment.
    with ThreadPoolExecutor(6) as pool:
        changes = list(
            pool.map(
                lambda version: registry.bootstrap(models[version], actor="replica"),
                ["v1", "v2"] * 3,
            )
        )
    made = [change for change in changes if change is not None]
    assert len(made) == 1
    assert roles(registry) == {made[0].version: "active"}


def _answers(
    connection: psycopg.Connection, version: str, count: int, labelled: int, *, right: bool
) -> None:
    """`count` dog answers of a version, the first `labelled` judged by users."""
    for index in range(count):
        answer = connection.execute(
            "INSERT INTO monitoring (id, prediction_result, proba_cat, proba_dog, confidence,"
            " inference_time_ms, model_version) VALUES (gen_random_uuid(), 'dog', 0.1, 0.9,"
            " 0.9, 5, %s) RETURNING id",
            (version,),
        ).fetchone()
        assert answer is not None
        if index < labelled:
            connection.execute(
                "INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at)"
                " VALUES (%s, %s, %s, now())",
                (answer[0], "satisfied" if right else "unsatisfied", "dog" if right else "cat"),
            )


def test_cli_list_puts_live_figures_beside_the_cards(
    database_url: str,
    registry: Registry,
    models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.bootstrap(models["v1"], actor="test")
    registry.register(models["v2"], actor="test")
    registry.canary("v2", 0.5, actor="test")
    with psycopg.connect(database_url, autocommit=True) as connection:
        _answers(connection, "v1", 20, 10, right=True)
        _answers(connection, "v2", 8, 6, right=False)
        connection.execute(
            "INSERT INTO drift_checks (model_version, window_size, predictions, labelled,"
            " drift_score, drift_threshold, estimated_accuracy) VALUES ('v2', 8, 8, 6, 0.5, 0.1,"
            " 0.93)"
        )
    registry.retire(
        "v2",
        actor="canary-analysis",
        reason="automatic rollback: accuracy 0.0% on 6 labelled answers",
        only_from="canary",
    )
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert registry_cli.main(["--json", "list"]) == 0
    live = {row["version"]: row["live"] for row in json.loads(capsys.readouterr().out)}
    assert live["v2"]["answers"] == 8
    assert live["v2"]["labelled"] == 6
    assert live["v2"]["feedback_accuracy"] == 0.0
    # Wilson's 95 % interval of 0 out of 6: [0, z²/(n + z²)].
    assert live["v2"]["feedback_interval"] == pytest.approx([0.0, 0.3903], abs=1e-4)
    assert live["v2"]["estimated_accuracy"] == 0.93
    assert live["v2"]["drift"] == "drift"
    assert live["v2"]["canary"]["outcome"] == "rolled back"
    assert live["v2"]["canary"]["actor"] == "canary-analysis"
    assert live["v1"]["feedback_accuracy"] == 1.0
    assert live["v1"]["drift"] == "not checked"
    assert live["v1"]["canary"] is None
    assert registry_cli.main(["list"]) == 0
    table = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "0.0% [0.0%-39.0%] n=6" in table["v2"]
    assert "93.0%" in table["v2"] and " drift " in table["v2"]
    assert "rolled back" in table["v2"] and "automatic rollback" in table["v2"]
    assert "100.0% [72.2%-100.0%] n=10" in table["v1"]
