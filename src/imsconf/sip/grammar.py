"""RFC 3261 §25 grammar fragments used by the SIP parser.

Each regex sits under the ABNF it implements.  Deliberate leniency is commented.  Every pattern is compiled
with ``re.ASCII``: the ABNF is defined over octets, and Python's Unicode-aware ``\\d``/``\\s`` would otherwise
accept digits such as "٣" or spaces such as U+0085 that no other SIP element would read the same way.
"""

from __future__ import annotations

import re

A = re.ASCII

# DIGIT = %x30-39   (used instead of \d so that int() never sees a non-ASCII digit)
DIGITS_RE = re.compile(r"[0-9]+", A)

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN, A)
FULL_TOKEN_RE = re.compile(rf"{TOKEN}\Z", A)  # use with .match(): \Z, not $, so "tok\n" is refused

# Method = INVITEm / ACKm / ... / extension-method ; extension-method = token
METHOD_RE = FULL_TOKEN_RE
# Methods this core knows of (RFC 3261, 3262, 3265/6665, 3311, 3428, 3515, 3903, 6086).  An unknown method is
# legal syntax; the application answers it with 501.  Used to pick 501 over 400 (RFC 4475 §3.1.2.18).
KNOWN_METHODS = frozenset(
    [
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
        "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    ]
)  # fmt: skip

# Request-Line = Method SP Request-URI SP SIP-Version CRLF
# Exactly one SP between elements and none at the end (RFC 4475 §3.1.2.9/10: answering 400 is reasonable).
# Request-URI = SIP-URI / SIPS-URI / absoluteURI: printable US-ASCII only (non-ASCII must be %-escaped).
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT  -- any number is recognised so that we can answer 505
# (RFC 4475 §3.1.2.16) rather than 400.
REQUEST_LINE_RE = re.compile(rf"({TOKEN}) ([\x21-\x7e]+) (SIP/[0-9]+\.[0-9]+)\Z", A)
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF ; Status-Code = 3DIGIT
# The code must be followed by SP (RFC 4475 §3.1.2.19: "4294967301" is not 429 + reason).  Leniency: a
# missing final SP before an empty reason phrase is accepted.
STATUS_LINE_RE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?\Z", A | re.DOTALL)
VERSION = "SIP/2.0"
VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", A)

# header-name = token ; HCOLON = *( SP / HTAB ) ":" SWS
HEADER_LINE_RE = re.compile(rf"({TOKEN})[ \t]*:[ \t]*(.*)\Z", A | re.DOTALL)

# LWS = [*WSP CRLF] 1*WSP : a line break followed by whitespace continues the previous line (folding).
# Leniency: a bare LF is accepted as a line break wherever CRLF is (RFC 3261 §7 asks for CRLF).
FOLD_RE = re.compile(r"\r?\n[ \t]+", A)
# The empty line ending the header block, CRLF or (leniently) bare LF.
BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)  -- so NUL, BEL, DEL may appear escaped (RFC 4475 §3.1.1.2)
QUOTED_STRING = r'"(?:[^"\\]|\\.)*"'
QUOTED_STRING_RE = re.compile(QUOTED_STRING, A | re.DOTALL)

# CSeq = 1*DIGIT LWS Method ; the number must fit in 32 bits (RFC 3261 §8.1.1.5: less than 2**31)
CSEQ_RE = re.compile(rf"([0-9]+)[ \t]+({TOKEN})\Z", A)
MAX_CSEQ = 2**31 - 1

# challenge / credentials = auth-scheme LWS auth-param *(COMMA auth-param)  (params split in headers.py)
AUTH_SCHEME_RE = re.compile(rf"({TOKEN})(?:[ \t]+(.*))?\Z", A | re.DOTALL)

# Max-Forwards = 1*DIGIT (0-255 in practice, RFC 3261 §8.1.1.6); leading zeros are legal ("0068").
MAX_FORWARDS_RE = re.compile(r"0*([0-9]{1,3})\Z", A)

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport ; SLASH = SWS "/" SWS
# sent-by = host [ COLON port ]
VIA_RE = re.compile(
    rf"({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]+))?[ \t]*(;.*)?\Z",
    A | re.DOTALL,
)

# hostport: hostname / IPv4address / IPv6reference (leniency: the shape is checked, not each label)
HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
HOST_RE = re.compile(rf"{HOST}\Z", A)

# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+\Z", A)
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z", A)

# display-name = *(token LWS)/ quoted-string.  Tokens only: RFC 4475 §3.1.2.15 ("Bell, Alexander") is refused.
DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*\Z", A)

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):", A)
