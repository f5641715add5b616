"""The pages' words: one JSON catalogue per language, and which language a request gets.

A catalogue is a flat object, key to text, `{name}` marking what the page fills in. Every
language must have the same keys and, for each key, the same placeholders: a text missing
in one language would otherwise show its key, or lose a figure, only to people who read it.
The upload page reads its catalogues in the browser; the dashboard reads its own here.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

LANGUAGES = ("en", "fr")
DEFAULT_LANGUAGE = "en"

Catalogue = dict[str, str]


class CatalogueMismatch(ValueError):
    """The catalogues of a page disagree on their keys or placeholders, or one is malformed."""


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a text."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def check_catalogues(catalogues: dict[str, Catalogue]) -> None:
    """Raise CatalogueMismatch unless every language has every key with the same placeholders."""
    missing = [language for language in LANGUAGES if language not in catalogues]
    if missing:
        raise CatalogueMismatch(f"no catalogue for {', '.join(missing)}")
    reference = catalogues[DEFAULT_LANGUAGE]
    problems = []
    for language, catalogue in catalogues.items():
        for key in sorted(reference.keys() - catalogue.keys()):
            problems.append(f"{key!r} missing in {language}")
        for key in sorted(catalogue.keys() - reference.keys()):
            problems.append(f"{key!r} missing in {DEFAULT_LANGUAGE}")
        for key in sorted(reference.keys() & catalogue.keys()):
            if placeholders(reference[key]) != placeholders(catalogue[key]):
                problems.append(f"{key!r} has other placeholders in {language}")
    if problems:
        raise CatalogueMismatch("; ".join(problems))


def read_catalogue(path: Path) -> Catalogue:
    """One language's catalogue: a JSON object of strings."""
    try:
        catalogue = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CatalogueMismatch(f"{path.name} is not JSON: {error}") from error
    if not isinstance(catalogue, dict) or not all(
        isinstance(key, str) and isinstance(text, str) for key, text in catalogue.items()
    ):
        raise CatalogueMismatch(f"{path.name} must be an object of strings")
    return catalogue


def load_catalogues(directory: Path) -> dict[str, Catalogue]:
    """Every language's `<language>.json` in `directory`, checked against each other."""
    catalogues = {
        language: read_catalogue(directory / f"{language}.json")
        for language in LANGUAGES
        if (directory / f"{language}.json").exists()
    }
    check_catalogues(catalogues)
    return catalogues


def _ranges(accept_language: str) -> list[tuple[float, str]]:
    """The Accept-Language ranges with their weights, best first (ties in header order)."""
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, parameters = item.strip().partition(";")
        weight = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value)
            except ValueError:
                continue
        if tag and weight > 0:
            ranges.append((-weight, position, tag.strip().lower()))
    return [(-weight, tag) for weight, _, tag in sorted(ranges)]


def choose_language(requested: str | None, accept_language: str | None) -> str:
    """The language asked for by name, else the browser's best one we speak, else English.

    French for any `fr*` range, English for `en*`; a browser that ranks neither gets English.
    """
    if requested in LANGUAGES:
        return requested
    for _, tag in _ranges(accept_language or ""):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


def translate(catalogue: Catalogue, key: str, **values: object) -> str:
    """The text of `key` with its placeholders filled in."""
    return catalogue[key].format(**values)
