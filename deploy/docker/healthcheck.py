"""Container health check without curl: `python healthcheck.py <service>` GETs its `/health`.

The port comes from the service's own settings, so it follows `<SERVICE>_PORT` like the server.
"""

from __future__ import annotations

import http.client
import importlib
import sys


def main(argv: list[str]) -> int:
    """Exit 0 when the service answers 200 on `/health`, 1 otherwise."""
    if len(argv) != 2:
        print("usage: healthcheck.py <service>", file=sys.stderr)
        return 2
    settings = importlib.import_module(f"services.{argv[1]}.settings").get_settings()
    connection = http.client.HTTPConnection("127.0.0.1", settings.port, timeout=4)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    except OSError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"unhealthy: /health answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
