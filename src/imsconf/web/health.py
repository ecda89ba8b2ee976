"""Health probes and the console's static files: no token (they carry no data).

``GET /health/live`` is 200 while the process serves; ``GET /health/ready`` is 200 when the runtime says
it can take calls (listeners up, the mixer connected; ``WebDeps.ready``), else 503.  The bodies say only
``{"status": "ok"}`` or ``{"status": "unavailable"}``.

``GET /`` is the console's ``index.html`` and ``GET /console/{name}`` its other files, from the package
directory ``imsconf/web/console/``; the console reads its data from the API with a token.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Final

from aiohttp import web

from .deps import deps_of
from .errors import ApiError, json_response
from .routes import Access, Param, Route

__all__ = ["CONSOLE_DIR", "ROUTES", "SCHEMAS"]

CONSOLE_DIR: Final = Path(__file__).resolve().parent / "console"
_FILE: Final = "{name:[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}}"  # one file, no directories, no leading dot
_STATIC_HEADERS: Final = {"Cache-Control": "no-cache", "Content-Security-Policy": "default-src 'self'"}


async def live(request: web.Request) -> web.StreamResponse:
    return json_response(200, {"status": "ok"})


async def ready(request: web.Request) -> web.StreamResponse:
    if deps_of(request).ready():
        return json_response(200, {"status": "ok"})
    return json_response(503, {"status": "unavailable"})


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


async def _serve(name: str) -> web.StreamResponse:
    body = await asyncio.to_thread(_read, CONSOLE_DIR / name)
    if body is None:
        raise ApiError(404, "no such file")
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.Response(body=body, content_type=ctype, headers=_STATIC_HEADERS)


async def console_index(request: web.Request) -> web.StreamResponse:
    return await _serve("index.html")


async def console_file(request: web.Request) -> web.StreamResponse:
    return await _serve(request.match_info["name"])


ROUTES: Final = (
    Route("GET", "/health/live", "health_live", "Liveness: 200 while the process serves", live,
          Access.PUBLIC, "health", responses={200: ("serving", "Health")}),
    Route("GET", "/health/ready", "health_ready", "Readiness: listeners up and the mixer connected", ready,
          Access.PUBLIC, "health", responses={200: ("ready", "Health"), 503: ("not ready", "Health")}),
    Route("GET", "/", "console_index", "The web console", console_index, Access.PUBLIC, "console",
          responses={200: ("index.html", None)}, content_type="text/html"),
    Route("GET", f"/console/{_FILE}", "console_file", "A file of the web console", console_file,
          Access.PUBLIC, "console", params=(Param("name", "path", "file name"),),
          responses={200: ("the file", None), 404: ("no such file", "Error")},
          content_type="application/octet-stream"),
)  # fmt: skip

SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}},
    },
}
