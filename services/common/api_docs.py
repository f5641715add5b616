"""The API's documentation page, `/docs`: Swagger UI served by the service itself.

Swagger UI's files come from a pinned package (`fastapi-offline`) instead of a CDN, so the page
works without the internet and under the strict CSP every page gets: no other origin, no
inline script (FastAPI's own page has both). ReDoc is not offered: its styles are inline.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
ASSETS_PATH = "/docs/assets"
# The package keeps Swagger UI's built files in its `static` folder.
SWAGGER_UI_FILES = ("fastapi_offline", "static")
_DAY_S = 24 * 3600

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} — API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <script src="{assets}/swagger-ui-bundle.js" defer></script>
  <script src="{assets}/api-docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """Serve `/docs`, its assets and the favicon; the app must be built with `docs_url=None`."""
    assert app.openapi_url is not None
    page = DOCS_PAGE.format(
        title=html.escape(app.title),
        assets=ASSETS_PATH,
        openapi=html.escape(app.openapi_url, quote=True),
    )

    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    async def favicon() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "favicon.ico",
            media_type="image/x-icon",
            headers={"Cache-Control": f"public, max-age={_DAY_S}"},
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    # Our own starter script first, then the package's files.
    app.mount(
        ASSETS_PATH,
        StaticFiles(directory=STATIC_DIR, packages=[SWAGGER_UI_FILES]),
        name="api-docs-assets",
    )
