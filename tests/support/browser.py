"""Headless Chromium (Debian's package) driven by Playwright, for tests of real pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.browser import CHROMIUM_ARGS, chromium_path


@pytest.fixture
def browser() -> Iterator[object]:
    """A Chromium per test; skipped with a reason where it is not installed.

    Playwright's sync API keeps an event loop running in the main thread while it is open; a
    session-wide browser would break every asyncio test that runs after the first page test.
    """
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser test skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser page (own context: no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    new_page = context.new_page()
    yield new_page
    context.close()
