"""API tokens, the two roles, and the middleware that checks them.

Two bearer tokens in the data directory, each created on first start (256 random bits, mode 0600):
``api-token`` is the operator's (read and write), ``api-token-viewer`` the viewer's (read only).  A route
says which it needs (:class:`imsconf.web.routes.Access`): no token is a 401 with ``WWW-Authenticate:
Bearer``, a wrong one a 401, the viewer's token on a write a 403.  Tokens are compared in constant time
against both, and never logged.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from .errors import ApiError
from .routes import Access, Handler

__all__ = [
    "TOKEN_FILE",
    "VIEWER_TOKEN_FILE",
    "ApiTokenError",
    "Role",
    "Tokens",
    "auth_middleware",
    "ensure_api_token",
]

log = logging.getLogger("imsconf.web.auth")

TOKEN_FILE: Final = "api-token"
VIEWER_TOKEN_FILE: Final = "api-token-viewer"
_CHALLENGE: Final = 'Bearer realm="imsconf"'


class ApiTokenError(OSError):
    """A token file is unusable (not a regular file, too short)."""


def ensure_api_token(data_dir: Path | str, name: str = TOKEN_FILE) -> str:
    """Read ``DATA_DIR/<name>``, creating it (256 random bits, mode 0600) on first start."""
    path = Path(data_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        token = secrets.token_urlsafe(32)
        try:
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("event=api_token_created path=%s", path)
        return token
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise ApiTokenError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        log.warning("event=api_token_mode_fixed path=%s mode=%o", path, stat.S_IMODE(st.st_mode))
        os.chmod(path, 0o600)
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < 32 or not token.isprintable() or " " in token:
        raise ApiTokenError(f"{path}: the token must be at least 32 printable characters without spaces")
    return token


class Role(enum.Enum):
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Tokens:
    operator: str
    viewer: str

    @classmethod
    def ensure(cls, data_dir: Path | str) -> Tokens:
        """Both tokens of *data_dir*, made on first start."""
        return cls(ensure_api_token(data_dir, TOKEN_FILE), ensure_api_token(data_dir, VIEWER_TOKEN_FILE))

    def __repr__(self) -> str:  # never show a token, even in a debugger or a log of the deps
        return "Tokens(...)"

    def role_of(self, credentials: str) -> Role | None:
        """The role whose token *credentials* is; both are always compared (constant time)."""
        given = credentials.encode("utf-8", "replace")
        operator = hmac.compare_digest(given, self.operator.encode("utf-8"))
        viewer = hmac.compare_digest(given, self.viewer.encode("utf-8"))
        if operator:
            return Role.OPERATOR
        return Role.VIEWER if viewer else None


def bearer(values: list[str]) -> str | None:
    """The credentials of exactly one ``Authorization: Bearer ...`` header; None otherwise."""
    if len(values) != 1:
        return None
    scheme, _, credentials = values[0].partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


ROLE_KEY: Final = web.RequestKey("imsconf_role", Role)


def auth_middleware(
    tokens: Tokens,
    access: Mapping[str, Access],
    authenticated: Callable[[web.Request], None],
) -> Middleware:
    """The middleware: *access* maps a route name to what it needs (an unmatched request needs a token,
    so an unauthenticated client learns nothing of the paths); *authenticated* is told of every request
    that carried a valid token (the connection guard stops counting its connection as a stranger's)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.route.name
        needed = access.get(name, Access.READ) if name is not None else Access.READ
        values = request.headers.getall("Authorization", [])
        credentials = bearer(values)
        role = tokens.role_of(credentials) if credentials else None
        if role is not None:
            request[ROLE_KEY] = role
            authenticated(request)
        if needed is Access.PUBLIC:
            return await handler(request)
        if not values:
            raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": _CHALLENGE})
        if role is None:
            log.warning("event=http_unauthorized path=%s", request.path[:80])
            raise ApiError(
                401,
                "invalid bearer token",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )
        if needed is Access.WRITE and role is not Role.OPERATOR:
            raise ApiError(
                403,
                "this token may only read",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope"'},
            )
        return await handler(request)

    return check
