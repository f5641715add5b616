"""How every command-line tool ends when PostgreSQL cannot be reached, or its settings are
refused: one sentence saying what it tried and what to do, and exit status 1, never a
traceback."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

import asyncpg
import psycopg
import pydantic

from services.common.running_stack import running_stack, stack_file

# "Nothing answers there", as psycopg (the CLIs, yoyo) and asyncpg say it; a bug in our SQL
# is none of these and keeps its traceback.
UNREACHABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    ConnectionError,
    socket.gaierror,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


def unreachable_message(error: BaseException) -> str:
    """The sentence for a database that did not answer, with the way out that fits."""
    from services.common.settings import ServiceSettings

    reason = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
    stack = running_stack()
    if os.environ.get("DATABASE_URL"):
        advice = "check DATABASE_URL, or unset it to use the stack of `make run`"
    elif stack is not None:
        advice = f"the stack of `make run` (pid {stack['pid']}) did not answer: see its terminal"
    elif "database_url" in ServiceSettings().model_fields_set:
        advice = "check DATABASE_URL in .env"
    else:
        advice = (
            f"no stack of `make run` is running here ({stack_file()}) and DATABASE_URL is not "
            "set: start one with `make run` in another terminal, or set DATABASE_URL"
        )
    return f"cannot reach PostgreSQL ({reason}); {advice}."


def settings_message(error: pydantic.ValidationError) -> str:
    """The sentence for settings a tool refused, with the variable and the reason."""
    problems = "; ".join(
        ": ".join(
            part
            for part in (
                ".".join(str(name) for name in problem["loc"]).upper(),
                problem["msg"].removeprefix("Value error, "),
            )
            if part
        )
        for problem in error.errors()
    )
    return (
        f"the settings were refused ({problems}); set them in the environment or .env, or run "
        "this while `make run` runs, whose development settings it then uses."
    )


def run_cli(main: Callable[[], int]) -> int:
    """Run a CLI's `main`; a database that cannot be reached, or settings refused, end it
    with one sentence."""
    try:
        return main()
    except UNREACHABLE as error:
        print(unreachable_message(error), file=sys.stderr)
        return 1
    except pydantic.ValidationError as error:
        print(settings_message(error), file=sys.stderr)
        return 1
