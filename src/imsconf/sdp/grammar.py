"""RFC 8866 §9 grammar fragments used by the SDP parser.

Each regex sits under the ABNF it implements.  Deliberate leniency is commented.
"""

from __future__ import annotations

import re

# token-char = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`"
#              / "{" / "|" / "}" / "~"   (%x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E)
TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
TOKEN_RE = re.compile(rf"^{TOKEN}$")

# non-ws-string = 1*(VCHAR/%x80-FF)
NON_WS_RE = re.compile(r"^[^\x00-\x20\x7f]+$")

# text = byte-string ; byte-string = 1*(%x01-09/%x0B-0C/%x0E-FF).  Lenient: an empty text is accepted
# (several stacks send "s=" with nothing), and serialized back as empty.
TEXT_RE = re.compile(r"^[^\x00\r\n]*$")

# type = %x61-7A ; a line is <type>=<value>.  Lenient: trailing whitespace is not stripped (it belongs to
# the value), but both CRLF and bare LF end a line (RFC 8866 §5 recommends accepting LF).
LINE_RE = re.compile(r"^([a-z])=(.*)$", re.DOTALL)

# origin-field = %s"o" "=" username SP sess-id SP sess-version SP nettype SP addrtype SP unicast-address
# sess-id = 1*DIGIT ; sess-version = 1*DIGIT
ORIGIN_RE = re.compile(r"^(\S+) ([0-9]+) ([0-9]+) (\S+) (\S+) (\S+)$")

# connection-field = %s"c" "=" nettype SP addrtype SP connection-address
CONNECTION_RE = re.compile(r"^(\S+) (\S+) (\S+)$")
# IP4-multicast = m1 3( "." decimal-uchar ) "/" ttl [ "/" numaddr ]
# IP6-multicast = IP6-address [ "/" numaddr ]
ADDRESS_SUFFIX_RE = re.compile(r"^([^/]+)(?:/([0-9]{1,3}))?(?:/([0-9]{1,9}))?$")

# bandwidth-field = %s"b" "=" bwtype ":" bandwidth ; bwtype = token ; bandwidth = 1*DIGIT
BANDWIDTH_RE = re.compile(rf"^({TOKEN}):([0-9]{{1,18}})$")

# time-fields = %s"t" "=" start-time SP stop-time ; start-time = time / "0" ; time = POS-DIGIT 9*DIGIT
# Lenient: any digit string (some stacks send small non-zero NTP values).
TIMING_RE = re.compile(r"^([0-9]{1,20}) ([0-9]{1,20})$")

# repeat-fields = %s"r" "=" repeat-interval SP typed-time 1*(SP typed-time)
# typed-time = 1*DIGIT [fixed-len-time-unit] ; fixed-len-time-unit = %s"d" / %s"h" / %s"m" / %s"s"
TYPED_TIME = r"[0-9]{1,18}[dhms]?"
TYPED_TIME_RE = re.compile(rf"^{TYPED_TIME}$")
# zone-adjustments = %s"z" "=" time SP ["-"] typed-time *(SP time SP ["-"] typed-time)
ZONE_OFFSET_RE = re.compile(rf"^-?{TYPED_TIME}$")
TIME_RE = re.compile(r"^[0-9]{1,20}$")

# key-field = %s"k" "=" key-type ; kept as an opaque text (obsolete, RFC 8866 §5.12)

# attribute = (attribute-name ":" attribute-value) / attribute-name
# attribute-name = token ; attribute-value = byte-string
ATTRIBUTE_NAME_RE = TOKEN_RE

# media-field = %s"m" "=" media SP port ["/" integer] SP proto 1*(SP fmt)
# media = token ; proto = token *("/" token) ; fmt = token
# Lenient: a media line with no fmt is accepted (seen on rejected streams).
MEDIA_RE = re.compile(
    rf"^({TOKEN}) ([0-9]{{1,5}})(?:/([0-9]{{1,5}}))? ({TOKEN}(?:/{TOKEN})*)((?: {TOKEN})*)$"
)
