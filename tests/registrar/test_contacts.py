"""Reading a REGISTER's Contact, Expires, q and Path (registrar/contacts.py), with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reg_helpers import PHONE, register, registrar

from imsconf.registrar.contacts import (
    MAX_DELTA_SECONDS,
    RegisterError,
    format_q,
    parse_contacts,
    parse_delta_seconds,
    parse_path,
    parse_q,
)
from imsconf.sip.errors import SipParseError
from imsconf.sip.headers import Headers


def _headers(*pairs: tuple[str, str]) -> Headers:
    return Headers.of(pairs)


@given(st.integers(min_value=0, max_value=10**30))
def test_delta_seconds_round_trip_and_cap(n: int) -> None:
    assert parse_delta_seconds(str(n), "Expires") == min(n, MAX_DELTA_SECONDS)


@given(st.text(max_size=20))
def test_delta_seconds_is_ascii_digits_or_a_400_naming_the_field(text: str) -> None:
    digits = text.strip()
    if digits and len(digits) <= 40 and all("0" <= c <= "9" for c in digits):
        assert parse_delta_seconds(text, "Expires") >= 0
    else:
        with pytest.raises(RegisterError) as err:
            parse_delta_seconds(text, "Expires")
        assert err.value.status == 400 and "Expires" in err.value.reason


@given(st.integers(min_value=0, max_value=1000))
def test_q_round_trip(q: int) -> None:
    assert parse_q(format_q(q)) == q


@given(st.text(alphabet="01.23456789x", max_size=7))
def test_q_is_a_qvalue_or_a_400(text: str) -> None:
    try:
        q = parse_q(text)
    except RegisterError as exc:
        assert exc.status == 400 and "q parameter in Contact" in exc.reason
    else:
        assert 0 <= q <= 1000
        assert float(text) * 1000 == pytest.approx(q)


def test_q_examples() -> None:
    assert parse_q(None) == 1000
    assert (parse_q("0"), parse_q("0.5"), parse_q("0.125"), parse_q("1.000"), parse_q("1.")) == (
        0, 500, 125, 1000, 1000,
    )  # fmt: skip
    for bad in ("1.001", "2", ".5", "0.1234", "-0"):
        with pytest.raises(RegisterError):
            parse_q(bad)


_uri_user = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_host = st.sampled_from(["198.51.100.7", "phone.example.net", "[2001:db8::1]"])
_port = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


@given(
    _uri_user,
    _host,
    _port,
    st.one_of(st.none(), st.integers(0, 10**12)),
    st.one_of(st.none(), st.integers(0, 1000)),
)
def test_generated_contacts_parse_back(
    user: str, host: str, port: int | None, expires: int | None, q: int | None
) -> None:  # fmt: skip
    uri = f"sip:{user}@{host}" + (f":{port}" if port is not None else "")
    params = (f";expires={expires}" if expires is not None else "") + (
        f";q={format_q(q)}" if q is not None else ""
    )
    parsed = parse_contacts(_headers(("Contact", f'"{user}" <{uri}>{params}')))
    assert parsed is not None
    (c,) = parsed
    assert c.text == uri
    assert c.expires == (None if expires is None else min(expires, MAX_DELTA_SECONDS))
    assert c.q == (1000 if q is None else q) and c.q_given == (q is not None)


@given(st.text(max_size=60))
def test_any_contact_text_parses_or_is_a_400_naming_contact(text: str) -> None:
    try:
        headers = _headers(("Contact", text))
    except SipParseError:
        return
    try:
        parse_contacts(headers)
    except RegisterError as exc:
        assert exc.status == 400 and "Contact" in exc.reason


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16))
def test_any_expires_header_gives_200_423_or_400_naming_expires(value: str) -> None:
    reg = registrar()
    resp = reg.register(register(expires=value.strip() or "x"), PHONE, "alice", 0.0)
    assert resp.status in (200, 400, 423)
    if resp.status == 400:
        assert "Expires" in resp.reason
    if resp.status == 423:
        assert resp.headers.get("Min-Expires") == "60"


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=16))
def test_any_expires_parameter_gives_200_423_or_400_naming_it(value: str) -> None:
    reg = registrar()
    try:
        req = register(contacts=(f"<sip:alice@198.51.100.7>;expires={value}",))
    except SipParseError:
        return  # the endpoint answers that one (not a valid Contact at all)
    resp = reg.register(req, PHONE, "alice", 0.0)
    assert resp.status in (200, 400, 423)
    if resp.status == 400:
        assert "Contact" in resp.reason


def test_star_and_empty() -> None:
    assert parse_contacts(_headers(("Contact", "*"))) is None
    assert parse_contacts(_headers()) == []
    with pytest.raises(RegisterError):
        parse_contacts(_headers(("Contact", "*"), ("Contact", "<sip:a@b>")))


def test_contact_without_a_value_for_expires_or_q_is_400() -> None:
    for params in (";expires", ";q"):
        with pytest.raises(RegisterError) as err:
            parse_contacts(_headers(("Contact", f"<sip:a@b>{params}")))
        assert err.value.status == 400 and "Contact" in err.value.reason


def test_path_entries_split_and_kept_in_order() -> None:
    path = parse_path(
        _headers(("Path", "<sip:p1.example.net;lr>, <sip:p2.example.net;lr>"), ("Path", "<sip:p3;lr>"))
    )
    assert path == ("<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>", "<sip:p3;lr>")
    with pytest.raises(RegisterError):
        parse_path(_headers(("Path", "<sip:bad host>")))
