"""RFC 4028 session timers as the focus applies them: the interval a request asks for, or the answer."""

from __future__ import annotations

from imsconf.sip.message import Request, Response
from imsconf.sip.util import make_response, new_tag

from .config import MIN_SE

__all__ = ["session_interval"]


def session_interval(req: Request, configured: int) -> int | Response | None:
    """The interval to use, a 400/422 to send, or None when the UAC knows nothing of timers (or cannot be
    the refresher). *configured* is the focus's own ``session_expires``."""
    value = req.headers.get("Session-Expires")
    supports = "timer" in req.headers.tokens("Supported")
    if value is None:
        return configured if supports else None
    try:
        interval = int(value.split(";")[0].strip())
    except ValueError:
        return make_response(req, 400, "Bad Session-Expires", to_tag=new_tag())
    if interval < MIN_SE:
        resp = make_response(req, 422, "Session Interval Too Small", to_tag=new_tag())
        resp.headers.add("Min-SE", str(MIN_SE))
        return resp
    if not supports:
        # RFC 4028 §9: a UAC without "timer" cannot be the refresher, and the focus does not refresh
        # sessions itself: no timer, no Session-Expires in the answer (§8.1: then none is in force).
        return None
    return min(interval, configured) if interval > 0 else None
