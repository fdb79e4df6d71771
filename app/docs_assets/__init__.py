"""The API's reference pages, Swagger UI at `/docs` and ReDoc at `/redoc`, with everything they
load served from the package under `/docs/static/`: the service often runs on a closed network,
where FastAPI's default pages (scripts from a CDN, fonts from Google) are blank.

static/ holds, as published on the npm registry (`npm pack`), with their licences:
swagger-ui/ from swagger-ui-dist 5.35.0 (the bundle, its stylesheet and favicon), and redoc/ from
redoc 2.5.4 (the standalone bundle; FastAPI's page is written for ReDoc 2). The one outside URL
left in them, Redocly's logo in ReDoc's sidebar, is refused by the pages' Content-Security-Policy
(`app.main`), and ReDoc then leaves the logo out.
"""

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/docs/static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: str) -> list[str]:
    """The CSP sources allowing each inline script of `html` (`'sha256-…'`)."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    ]


def install(app: FastAPI) -> list[str]:
    """Adds the two pages and their files to `app` (created with `docs_url` and `redoc_url`
    None); returns the hashes of the pages' inline scripts, for their Content-Security-Policy."""
    openapi_url = app.openapi_url or "/openapi.json"
    swagger = bytes(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API · Swagger UI",
            swagger_js_url=f"{PREFIX}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        ).body
    )
    redoc = bytes(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API · ReDoc",
            redoc_js_url=f"{PREFIX}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        ).body
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)

    app.mount(PREFIX, StaticFiles(directory=STATIC), name="docs-static")
    return inline_script_hashes(swagger.decode()) + inline_script_hashes(redoc.decode())
