"""Catalogues and the choice of language shared by the pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.i18n import (
    CatalogueMismatch,
    check_catalogues,
    choose_language,
    load_catalogues,
    translate,
)


@pytest.mark.parametrize(
    ("requested", "header", "expected"),
    [
        (None, "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"),
        (None, "fr-CA", "fr"),
        (None, "FR", "fr"),
        (None, "en-US,en;q=0.9,fr;q=0.8", "en"),
        (None, "de-DE,de;q=0.9", "en"),
        (None, "de-DE,fr;q=0.5", "fr"),
        (None, "en;q=0.4,fr;q=0.6", "fr"),
        (None, "fr;q=0,en", "en"),
        (None, "fr;q=zero,en;q=0.1", "en"),
        (None, "*", "en"),
        (None, "", "en"),
        (None, None, "en"),
        ("en", "fr-FR", "en"),
        ("fr", "en-US", "fr"),
        ("de", "fr-FR", "fr"),
        ("FR", "en", "en"),
    ],
)
def test_language_is_the_one_asked_for_else_the_browsers_else_english(
    requested: str | None, header: str | None, expected: str
) -> None:
    assert choose_language(requested, header) == expected


def write(directory: Path, **catalogues: dict[str, str]) -> Path:
    for language, catalogue in catalogues.items():
        (directory / f"{language}.json").write_text(json.dumps(catalogue), encoding="utf-8")
    return directory


def test_matching_catalogues_load_and_fill_their_placeholders(tmp_path: Path) -> None:
    write(tmp_path, en={"hello": "Hello {name}"}, fr={"hello": "Bonjour {name}"})
    catalogues = load_catalogues(tmp_path)
    assert translate(catalogues["fr"], "hello", name="Ada") == "Bonjour Ada"


@pytest.mark.parametrize(
    ("en", "fr", "problem"),
    [
        ({"a": "A", "b": "B"}, {"a": "A"}, "'b' missing in fr"),
        ({"a": "A"}, {"a": "A", "c": "C"}, "'c' missing in en"),
        ({"a": "{count} left"}, {"a": "il en reste"}, "'a' has other placeholders in fr"),
        ({"a": "{count} left"}, {"a": "{nombre} restants"}, "'a' has other placeholders in fr"),
    ],
)
def test_a_key_or_placeholder_in_one_language_only_is_refused(
    tmp_path: Path, en: dict[str, str], fr: dict[str, str], problem: str
) -> None:
    write(tmp_path, en=en, fr=fr)
    with pytest.raises(CatalogueMismatch, match=problem):
        load_catalogues(tmp_path)


def test_a_missing_or_malformed_catalogue_is_refused(tmp_path: Path) -> None:
    write(tmp_path, en={"a": "A"})
    with pytest.raises(CatalogueMismatch, match="no catalogue for fr"):
        load_catalogues(tmp_path)
    (tmp_path / "fr.json").write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(CatalogueMismatch, match="object of strings"):
        load_catalogues(tmp_path)
    (tmp_path / "fr.json").write_text("{", encoding="utf-8")
    with pytest.raises(CatalogueMismatch, match="not JSON"):
        load_catalogues(tmp_path)


def test_check_names_every_problem_at_once() -> None:
    with pytest.raises(CatalogueMismatch) as raised:
        check_catalogues({"en": {"a": "A", "b": "B"}, "fr": {"c": "C"}})
    assert str(raised.value).count("missing") == 3
