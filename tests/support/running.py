"""Running a coroutine from a synchronous test."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_async(coroutine: Coroutine[object, object, T]) -> T:
    """Run a coroutine to completion on its own thread.

    Playwright's sync API keeps an event loop running on the main thread once a browser test
    has run in the session, and `asyncio.run` refuses to start inside it.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
