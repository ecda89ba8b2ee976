"""RFC 3261 §25 grammar fragments used by the SIP parser.

Each regex sits under the ABNF it implements.  Deliberate leniency is commented.
"""

from __future__ import annotations

import re

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)
FULL_TOKEN_RE = re.compile(rf"^{TOKEN}$")

# Method = INVITEm / ACKm / ... / extension-method ; extension-method = token
METHOD_RE = FULL_TOKEN_RE

# Request-Line = Method SP Request-URI SP SIP-Version CRLF   (exactly one SP each: RFC 4475 §3.1.2.9/10)
REQUEST_LINE_RE = re.compile(rf"^({TOKEN}) (\S+) (SIP/\d+\.\d+)$")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF ; Status-Code = 3DIGIT
STATUS_LINE_RE = re.compile(r"^(SIP/\d+\.\d+) (\d{3}) ?(.*)$")
# Lenient: any version number is recognised so that we can answer 505 (RFC 4475 §3.1.2.16).
VERSION = "SIP/2.0"

# header-name = token ; HCOLON = *( SP / HTAB ) ":" SWS
HEADER_LINE_RE = re.compile(rf"^({TOKEN})[ \t]*:[ \t]*(.*)$", re.DOTALL)

# LWS folding: a CRLF followed by whitespace continues the previous line.
FOLD_RE = re.compile(r"\r?\n[ \t]+")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
QUOTED_STRING = r'"(?:[^"\\]|\\.)*"'
QUOTED_STRING_RE = re.compile(QUOTED_STRING, re.DOTALL)

# CSeq = 1*DIGIT LWS Method ; the number must fit in 32 bits (RFC 3261 §8.1.1.5)
CSEQ_RE = re.compile(rf"^(\d+)[ \t]+({TOKEN})$")
MAX_CSEQ = 2**31 - 1

# Via: sent-protocol LWS sent-by *( SEMI via-params )
VIA_RE = re.compile(
    rf"^({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*(\d+))?[ \t]*(;.*)?$",
    re.DOTALL,
)

# hostport
HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
HOST_RE = re.compile(rf"^{HOST}$")

# Characters allowed unescaped in the user part of a SIP URI (unreserved / user-unreserved) plus escapes.
USER_RE = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+$")

# Display name: *(token LWS) / quoted-string.  Tokens only (RFC 4475 §3.1.2.15 rejects other characters).
DISPLAY_TOKENS_RE = re.compile(rf"^{TOKEN}(?:[ \t]+{TOKEN})*$")

SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*):")
