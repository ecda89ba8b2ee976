"""RFC 5366 URI lists: multipart bodies and RFC 4826 resource lists (focus/urilist.py)."""

from __future__ import annotations

import pytest
from control_helpers import MULTIPART, RESOURCE_LISTS_SCHEMA, multipart, resource_list
from helpers import sdp_offer
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from imsconf.focus.urilist import (
    UriListEntry,
    UriListError,
    parse_resource_lists,
    split_invite_body,
    split_multipart,
)

BOB, CAROL = "sip:bob@example.net", "sip:carol@example.net;transport=tls"


def test_split_invite_body_gives_sdp_and_entries() -> None:
    sdp = sdp_offer()
    body = multipart(sdp, resource_list(BOB, CAROL))
    offer, entries = split_invite_body(MULTIPART, body)
    assert offer == sdp
    assert entries == (UriListEntry(BOB, "bob"), UriListEntry(CAROL, "car"))


def test_plain_sdp_has_no_list() -> None:
    assert split_invite_body("application/sdp", b"v=0\r\n") == (b"v=0\r\n", ())


def test_quoted_boundary_and_preamble() -> None:
    body = b"preamble\r\n--b 1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b 1--\r\nepilogue"
    (part,) = split_multipart('multipart/mixed; boundary="b 1"', body)
    assert (part.content_type, part.body) == ("text/plain", b"hello")


@pytest.mark.parametrize(
    ("ctype", "body", "status"),
    [
        ("multipart/mixed", b"--x\r\n\r\n--x--", 400),  # no boundary parameter
        (MULTIPART, b"no delimiters at all", 400),
        (MULTIPART, multipart(sdp_offer(), resource_list(BOB))[:-20], 400),  # no close delimiter
        ("text/plain", b"hi", 415),
        (MULTIPART, multipart(b"", resource_list(BOB)).replace(b"application/sdp", b"text/plain"), 400),
    ],
)
def test_bad_bodies(ctype: str, body: bytes, status: int) -> None:
    with pytest.raises(UriListError) as err:
        split_invite_body(ctype, body)
    assert err.value.status == status


def test_duplicates_are_removed_and_order_kept() -> None:
    rl = resource_list(BOB, CAROL, "sip:bob@example.net;transport=udp")
    assert [e.uri for e in parse_resource_lists(rl)] == [BOB, CAROL]


def test_nested_lists_are_walked() -> None:
    rl = resource_list(BOB, extra='<list name="more"><entry uri="sip:dave@example.net"/></list>')
    assert [e.uri for e in parse_resource_lists(rl)] == [BOB, "sip:dave@example.net"]


def test_too_many_entries_413() -> None:
    rl = resource_list(*(f"sip:u{i}@example.net" for i in range(5)))
    with pytest.raises(UriListError) as err:
        parse_resource_lists(rl, max_entries=4)
    assert err.value.status == 413


@pytest.mark.parametrize(
    ("doc", "status"),
    [
        (resource_list(BOB, extra='<entry-ref ref="x/y"/>'), 403),
        (resource_list(BOB, extra='<external anchor="http://x/y"/>'), 403),
        (
            b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list><entry/></list>"
            b"</resource-lists>",
            400,
        ),
        (b"<resource-lists xmlns='urn:other'><list/></resource-lists>", 400),
        (b"<resource-lists", 400),
        (resource_list("tel:+123"), 400),
        (resource_list("sip:example.net"), 400),  # no user
        (b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>", 400),  # nobody
        (b'<!DOCTYPE x [<!ENTITY a "b">]><resource-lists/>', 400),
    ],
)
def test_bad_lists(doc: bytes, status: int) -> None:
    with pytest.raises(UriListError) as err:
        parse_resource_lists(doc)
    assert err.value.status == status


# the embedded schema accepts and refuses what the RFC 4826 schema file does
SAMPLES = [
    resource_list(BOB),
    resource_list(BOB, extra='<entry-ref ref="a"/>'),
    b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list><entry/></list></resource-lists>",
    b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list><display-name xml:lang='en'>x"
    b"</display-name><entry uri='sip:a@b'/></list></resource-lists>",
    b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><entry uri='sip:a@b'/></resource-lists>",
    b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><list><entry uri='sip:a@b'>"
    b"<display-name>A</display-name><x:cc xmlns:x='urn:x'/></entry></list></resource-lists>",
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_embedded_schema_agrees_with_rfc4826_schema(sample: bytes) -> None:
    from imsconf.focus.urilist import _get_schema

    root = etree.fromstring(sample)
    assert _get_schema().validate(root) == RESOURCE_LISTS_SCHEMA.validate(root)


@given(st.binary(max_size=300))
def test_garbage_bodies_raise_only_urilisterror(data: bytes) -> None:
    for ctype in (MULTIPART, "multipart/mixed;boundary=x"):
        try:
            split_invite_body(ctype, data)
        except UriListError:
            pass
