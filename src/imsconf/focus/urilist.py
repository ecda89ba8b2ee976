"""URI lists in INVITE (RFC 5366): the ``multipart/mixed`` body and its RFC 4826 resource list.  Pure.

An INVITE to the factory (or to a conference URI) may carry, next to its SDP offer, an
``application/resource-lists+xml`` part (``Content-Disposition: recipient-list``) naming the users the focus
must invite.  :func:`split_invite_body` returns the SDP and the list; every error is a :class:`UriListError`
carrying the SIP status to answer with (400 malformed, 413 too many entries, 415 unknown part, 403 a
reference the focus will not follow).

The resource list is validated with lxml against the RFC 4826 schema, embedded below (package data is not
installed with the wheel; ``tests/focus/test_urilist.py`` checks that the copy accepts and rejects the same
documents as the schema file vendored in ``tests/data/schemas/``).  Only ``entry`` elements are used:
``entry-ref`` and ``external`` point at documents the focus would have to fetch, and are refused.
Duplicates are removed (RFC 5366 §4: the URI-list service sends one INVITE per distinct URI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from lxml import etree

from imsconf.sip.errors import SipParseError
from imsconf.sip.uri import SipUri

__all__ = [
    "MAX_ENTRIES",
    "MULTIPART_MIXED",
    "RESOURCE_LISTS",
    "RL_NS",
    "BodyPart",
    "UriListEntry",
    "UriListError",
    "parse_resource_lists",
    "split_invite_body",
    "split_multipart",
]

MULTIPART_MIXED: Final = "multipart/mixed"
RESOURCE_LISTS: Final = "application/resource-lists+xml"
RL_NS: Final = "urn:ietf:params:xml:ns:resource-lists"
MAX_ENTRIES: Final = 32
MAX_PARTS: Final = 8
MAX_LIST_BYTES: Final = 64 * 1024


class UriListError(Exception):
    """The body cannot be used; answer the INVITE with ``status``."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class BodyPart:
    content_type: str  # lower-cased media type without parameters
    disposition: str | None  # lower-cased disposition type, e.g. "recipient-list", "session"
    body: bytes


@dataclass(frozen=True, slots=True)
class UriListEntry:
    uri: str
    display: str | None = None


# ---------------------------------------------------------------------------------------- multipart

_BOUNDARY_RE: Final = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^;\s]{1,70}))', re.IGNORECASE)


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def split_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """The parts of a ``multipart/mixed`` body (RFC 2046 §5.1.1); preamble and epilogue ignored."""
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        raise UriListError("multipart body without boundary")
    boundary = (m.group(1) or m.group(2)).encode()
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise UriListError("multipart body without parts")
    parts: list[BodyPart] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        if len(parts) >= MAX_PARTS:
            raise UriListError("too many body parts", 413)
        # the delimiter line ends with CRLF; the CRLF before the next delimiter belongs to it
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        elif chunk.startswith(b"\n"):
            chunk = chunk[1:]
        else:
            raise UriListError("bad multipart delimiter line")
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        elif chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            if chunk.startswith((b"\r\n", b"\n")):  # no header fields at all
                head, content = b"", chunk.lstrip(b"\r\n")
            else:
                raise UriListError("body part without header/body separator")
        ctype = "text/plain"  # RFC 2046 §5.1: the default
        disposition: str | None = None
        for line in head.decode("ascii", errors="replace").splitlines():
            name, colon, value = line.partition(":")
            if not colon:
                raise UriListError("bad body part header")
            key = name.strip().lower()
            if key in ("content-type", "c"):
                ctype = _media_type(value)
            elif key == "content-disposition":
                disposition = _media_type(value)
        parts.append(BodyPart(ctype, disposition, content))
    if not closed:
        raise UriListError("multipart body without close delimiter")
    return parts


# ---------------------------------------------------------------------------------------- resource lists

# RFC 4826 §3.2, with the xml:lang reference of display-nameType replaced by a lax attribute wildcard of the
# XML namespace (the import of xml.xsd would need a file or the network).
_SCHEMA_TEXT: Final = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema targetNamespace="{RL_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{RL_NS}"
    elementFormDefault="qualified" attributeFormDefault="unqualified">
 <xs:complexType name="listType">
  <xs:sequence>
   <xs:element name="display-name" type="display-nameType" minOccurs="0"/>
   <xs:sequence minOccurs="0" maxOccurs="unbounded">
    <xs:choice>
     <xs:element name="list">
      <xs:complexType><xs:complexContent><xs:extension base="listType"/></xs:complexContent></xs:complexType>
     </xs:element>
     <xs:element name="external" type="externalType"/>
     <xs:element name="entry" type="entryType"/>
     <xs:element name="entry-ref" type="entry-refType"/>
    </xs:choice>
   </xs:sequence>
   <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence>
  <xs:attribute name="name" type="xs:string" use="optional"/>
  <xs:anyAttribute namespace="##other" processContents="lax"/>
 </xs:complexType>
 <xs:complexType name="entryType">
  <xs:sequence>
   <xs:element name="display-name" minOccurs="0">
    <xs:complexType><xs:simpleContent><xs:extension base="display-nameType"/></xs:simpleContent>
    </xs:complexType>
   </xs:element>
   <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence>
  <xs:attribute name="uri" type="xs:anyURI" use="required"/>
  <xs:anyAttribute namespace="##other" processContents="lax"/>
 </xs:complexType>
 <xs:complexType name="entry-refType">
  <xs:sequence>
   <xs:element name="display-name" type="display-nameType" minOccurs="0"/>
   <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence>
  <xs:attribute name="ref" type="xs:anyURI" use="required"/>
  <xs:anyAttribute namespace="##other" processContents="lax"/>
 </xs:complexType>
 <xs:complexType name="externalType">
  <xs:sequence>
   <xs:element name="display-name" type="display-nameType" minOccurs="0"/>
   <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence>
  <xs:attribute name="anchor" type="xs:anyURI"/>
  <xs:anyAttribute namespace="##other" processContents="lax"/>
 </xs:complexType>
 <xs:element name="resource-lists">
  <xs:complexType>
   <xs:sequence minOccurs="0" maxOccurs="unbounded"><xs:element name="list" type="listType"/></xs:sequence>
  </xs:complexType>
 </xs:element>
 <xs:complexType name="display-nameType">
  <xs:simpleContent>
   <xs:extension base="xs:string">
    <xs:anyAttribute namespace="http://www.w3.org/XML/1998/namespace" processContents="lax"/>
   </xs:extension>
  </xs:simpleContent>
 </xs:complexType>
</xs:schema>
"""

_schema: etree.XMLSchema | None = None
_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _get_schema() -> etree.XMLSchema:
    global _schema
    if _schema is None:
        _schema = etree.XMLSchema(etree.fromstring(_SCHEMA_TEXT.encode()))
    return _schema


def _q(tag: str) -> str:
    return f"{{{RL_NS}}}{tag}"


def parse_resource_lists(doc: bytes, *, max_entries: int = MAX_ENTRIES) -> tuple[UriListEntry, ...]:
    """The distinct SIP URIs of an RFC 4826 document, in document order."""
    if len(doc) > MAX_LIST_BYTES:
        raise UriListError("resource list too large", 413)
    if b"<!DOCTYPE" in doc or b"<!ENTITY" in doc:
        raise UriListError("DTDs are not accepted in a resource list")
    try:
        root = etree.fromstring(doc, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UriListError(f"resource list is not well-formed XML: {exc}") from None
    schema = _get_schema()
    if not schema.validate(root):
        err = schema.error_log.last_error
        raise UriListError(f"invalid resource list: {err.message if err else 'schema'}")
    if root.find(f".//{_q('entry-ref')}") is not None or root.find(f".//{_q('external')}") is not None:
        raise UriListError("entry-ref and external references are not followed", 403)
    entries: list[UriListEntry] = []
    seen: set[str] = set()
    for el in root.iter(_q("entry")):
        raw = str(el.get("uri", "")).strip()
        try:
            uri = SipUri.parse(raw)
        except SipParseError:
            raise UriListError(f"not a SIP URI in the resource list: {raw[:60]!r}") from None
        if uri.scheme not in ("sip", "sips") or uri.user is None or uri.headers is not None:
            raise UriListError(f"unusable URI in the resource list: {raw[:60]!r}")
        key = uri.aor
        if key in seen:
            continue
        seen.add(key)
        if len(entries) >= max_entries:
            raise UriListError(f"more than {max_entries} users in the resource list", 413)
        display = el.findtext(_q("display-name"))
        entries.append(UriListEntry(str(uri), display.strip() if display else None))
    if not entries:
        raise UriListError("the resource list names nobody")
    return tuple(entries)


def split_invite_body(
    content_type: str, body: bytes, *, max_entries: int = MAX_ENTRIES
) -> tuple[bytes, tuple[UriListEntry, ...]]:
    """The SDP offer and the URI list of an INVITE body (an empty list when there is none)."""
    mtype = _media_type(content_type)
    if mtype == "application/sdp":
        return body, ()
    if mtype != MULTIPART_MIXED:
        raise UriListError(f"cannot use a {mtype} body in INVITE", 415)
    sdp: bytes | None = None
    entries: tuple[UriListEntry, ...] = ()
    for part in split_multipart(content_type, body):
        if part.content_type == "application/sdp" and sdp is None:
            sdp = part.body
        elif part.content_type == RESOURCE_LISTS and not entries:
            if part.disposition not in (None, "recipient-list"):
                raise UriListError(f"resource list with disposition {part.disposition}", 415)
            entries = parse_resource_lists(part.body, max_entries=max_entries)
        elif part.disposition == "recipient-list" or part.content_type in ("application/sdp", RESOURCE_LISTS):
            raise UriListError(f"unexpected body part {part.content_type}", 400)
        # other parts with another disposition are optional (RFC 3261 §20.11: handling=optional): ignored
    if sdp is None:
        raise UriListError("multipart INVITE without an SDP offer", 400)
    return sdp, entries
