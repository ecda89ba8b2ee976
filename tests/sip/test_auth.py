"""Digest authentication, server side: RFC 7616 vectors, nonces, replay, every failure path."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsconf.sip.auth import (
    ALGORITHMS,
    AuthResult,
    DigestAuthenticator,
    challenge_header_name,
    challenge_status,
    compute_ha1,
    compute_response,
    credentials_header_name,
)
from imsconf.sip.headers import parse_auth_params

REALM = "example.com"
SECRET = b"0123456789abcdef-test-secret"
USERS = {"alice": "wonderland", "bob": "builder"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = USERS.get(username)
    if password is None or realm != REALM:
        return None
    return compute_ha1(username, realm, password, algorithm)


def make_auth(**kw: object) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, lookup, SECRET, **kw)  # type: ignore[arg-type]


def answer(
    challenge: str,
    username: str = "alice",
    password: str | None = None,
    method: str = "INVITE",
    uri: str = "sip:conf@example.com",
    nc: int = 1,
    cnonce: str = "0a4f113b",
    qop: str = "auth",
    body: bytes = b"",
    realm: str | None = None,
    algorithm: str | None = None,
    drop: tuple[str, ...] = (),
    extra: str = "",
) -> str:
    """A client's Authorization value for *challenge* (a test UA, not part of the product)."""
    _, p = parse_auth_params(challenge)
    alg = algorithm or p["algorithm"]
    rlm = realm or p["realm"]
    pw = USERS.get(username, "x") if password is None else password
    ha1 = compute_ha1(username, rlm, pw, alg[:-5] if alg.endswith("-sess") else alg)
    nc_text = f"{nc:08x}"
    resp = compute_response(alg, ha1, method, uri, p["nonce"], qop=qop, nc=nc_text, cnonce=cnonce, body=body)
    fields = {
        "username": f'"{username}"',
        "realm": f'"{rlm}"',
        "nonce": f'"{p["nonce"]}"',
        "uri": f'"{uri}"',
        "response": f'"{resp}"',
        "algorithm": alg,
        "cnonce": f'"{cnonce}"',
        "opaque": f'"{p["opaque"]}"',
        "qop": qop,
        "nc": nc_text,
    }
    text = ", ".join(f"{k}={v}" for k, v in fields.items() if k not in drop)
    return "Digest " + text + extra


# ---- RFC vectors ---------------------------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_3_9_1_response(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    got = compute_response(
        algorithm,
        ha1,
        "GET",
        "/dir/index.html",
        RFC7616_NONCE,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert got == expected


def test_rfc2617_3_5_response() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    got = compute_response(
        "MD5",
        ha1,
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_sess_and_auth_int_formulas() -> None:
    ha1 = compute_ha1("u", "r", "p", "SHA-256")

    def h(s: str) -> str:
        return hashlib.sha256(s.encode()).hexdigest()

    sess = h(f"{ha1}:N:C")
    ha2 = h(f"INVITE:sip:x:{hashlib.sha256(b'body').hexdigest()}")
    expected = h(f"{sess}:N:00000002:C:auth-int:{ha2}")
    got = compute_response(
        "SHA-256-sess", ha1, "INVITE", "sip:x", "N", qop="auth-int", nc="00000002", cnonce="C", body=b"body"
    )
    assert got == expected


# ---- challenge -----------------------------------------------------------------------------------------


def test_challenge_one_header_per_algorithm_sha256_first() -> None:
    values = make_auth().challenge(now=100.0)
    assert len(values) == 2
    parsed = [parse_auth_params(v) for v in values]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]
    for scheme, p in parsed:
        assert scheme == "digest"
        assert p["realm"] == REALM
        assert p["qop"] == "auth"
        assert p["opaque"]
        assert "stale" not in p
    assert parsed[0][1]["nonce"] == parsed[1][1]["nonce"]


def test_challenge_nonces_are_fresh_and_stale_flag() -> None:
    auth = make_auth()
    n1 = parse_auth_params(auth.challenge(1.0)[0])[1]["nonce"]
    n2 = parse_auth_params(auth.challenge(1.0)[0])[1]["nonce"]
    assert n1 != n2
    assert parse_auth_params(auth.challenge(1.0, stale=True)[0])[1]["stale"] == "true"


def test_proxy_helpers() -> None:
    assert challenge_status() == (401, "Unauthorized")
    assert challenge_status(proxy=True) == (407, "Proxy Authentication Required")
    assert challenge_header_name() == "WWW-Authenticate"
    assert challenge_header_name(True) == "Proxy-Authenticate"
    assert credentials_header_name() == "Authorization"
    assert credentials_header_name(True) == "Proxy-Authorization"
    pairs = make_auth().challenge_headers(0.0, proxy=True)
    assert [n for n, _ in pairs] == ["Proxy-Authenticate", "Proxy-Authenticate"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": b"short"},
        {"algorithms": ("SHA-1",)},
        {"algorithms": ()},
        {"algorithms": ("MD5", "MD5")},
        {"nonce_lifetime": 0},
        {"qops": ("auth-conf",)},
    ],
)
def test_constructor_rejects(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"realm": REALM, "credentials_lookup": lookup, "secret": SECRET}
    args.update(kwargs)
    with pytest.raises(ValueError):
        DigestAuthenticator(**args)  # type: ignore[arg-type]


def test_constructor_rejects_bad_realm() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator('a"b', lookup, SECRET)


# ---- verify: success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_verify_ok_every_algorithm(algorithm: str) -> None:
    auth = make_auth(algorithms=(algorithm,))
    ch = auth.challenge(10.0)[0]
    res = auth.verify("INVITE", answer(ch), now=11.0)
    assert res == AuthResult(True, "alice", False, "ok", algorithm)


def test_verify_ok_from_each_offered_challenge() -> None:
    auth = make_auth()
    for i in range(len(auth.algorithms)):
        ch = auth.challenge(0.0)[i]
        assert auth.verify("INVITE", answer(ch), now=1.0).ok
    # the offered challenges share one nonce, so one nc sequence covers them all
    sha, md5 = auth.challenge(0.0)
    assert auth.verify("INVITE", answer(sha, nc=1), now=1.0).ok
    assert auth.verify("INVITE", answer(md5, nc=1), now=1.0).reason == "replayed nc"


def test_verify_nc_increments_on_same_nonce() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    for nc in (1, 2, 5):
        assert auth.verify("INVITE", answer(ch, nc=nc), now=float(nc)).ok


def test_algorithm_absent_means_md5() -> None:
    auth = make_auth(algorithms=("MD5",))
    ch = auth.challenge(0.0)[0]
    assert auth.verify("INVITE", answer(ch, drop=("algorithm",)), now=1.0).ok
    sha_only = make_auth(algorithms=("SHA-256",))
    ch = sha_only.challenge(0.0)[0]
    res = sha_only.verify("INVITE", answer(ch, algorithm="MD5", drop=("algorithm",)), now=1.0)
    assert not res.ok and res.reason == "unsupported algorithm"


def test_auth_int_covers_the_body() -> None:
    auth = make_auth(qops=("auth", "auth-int"))
    ch = auth.challenge(0.0)[0]
    assert parse_auth_params(ch)[1]["qop"] == "auth, auth-int"
    good = answer(ch, qop="auth-int", body=b"v=0\r\n")
    assert auth.verify("INVITE", good, now=1.0, body=b"v=0\r\n").ok
    tampered = answer(ch, qop="auth-int", body=b"v=0\r\n", nc=2)
    res = auth.verify("INVITE", tampered, now=1.0, body=b"v=1\r\n")
    assert not res.ok and res.reason == "wrong response"


def test_username_star_rfc8187() -> None:
    USERS["jäsøn"] = "pw"
    try:
        auth = make_auth()
        ch = auth.challenge(0.0)[0]
        value = answer(ch, username="jäsøn").replace('username="jäsøn"', "username*=UTF-8''j%C3%A4s%C3%B8n")
        res = auth.verify("INVITE", value, now=1.0)
        assert res.ok and res.username == "jäsøn"
    finally:
        del USERS["jäsøn"]


def test_request_uri_binding() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    assert auth.verify("INVITE", answer(ch), now=1.0, request_uri="sip:conf@example.com").ok
    res = auth.verify("INVITE", answer(ch, nc=2), now=1.0, request_uri="sip:other@example.com")
    assert res.reason == "uri does not match the request"


def test_select_credentials_prefers_own_realm() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    mine = answer(ch)
    other = answer(ch, realm="elsewhere.net")
    assert auth.select_credentials(["Basic Zm9vOmJhcg==", other, mine]) == mine
    assert auth.select_credentials(["Basic Zm9vOmJhcg==", other]) == other
    assert auth.select_credentials(["Digest bad", "x" * 5000]) is None


# ---- verify: nonces ------------------------------------------------------------------------------------


def test_stale_nonce_with_right_password_is_stale() -> None:
    auth = make_auth(nonce_lifetime=30.0)
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch), now=31.0)
    assert res == AuthResult(False, "alice", True, "stale nonce", "SHA-256")


def test_stale_nonce_with_wrong_password_is_not_stale() -> None:
    auth = make_auth(nonce_lifetime=30.0)
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch, password="guess"), now=31.0)
    assert not res.ok and not res.stale and res.reason == "wrong response"


def test_nonce_at_lifetime_edge_is_still_fresh() -> None:
    auth = make_auth(nonce_lifetime=30.0)
    ch = auth.challenge(0.0)[0]
    assert auth.verify("INVITE", answer(ch), now=30.0).ok


def test_forged_nonce() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    nonce = parse_auth_params(ch)[1]["nonce"]
    forged = nonce[:-2] + ("AA" if nonce[-2:] != "AA" else "BB")
    res = auth.verify("INVITE", answer(ch.replace(nonce, forged)), now=1.0)
    assert not res.ok and not res.stale and res.reason == "forged or foreign nonce"


def test_nonce_from_another_server_secret_or_realm() -> None:
    other = DigestAuthenticator(REALM, lookup, b"another-secret-of-16+bytes")
    ch = other.challenge(0.0)[0]
    assert (
        make_auth().verify("INVITE", answer(ch, drop=("opaque",)), now=1.0).reason
        == "forged or foreign nonce"
    )
    other_realm = DigestAuthenticator("other.example", lookup, SECRET)
    nonce = parse_auth_params(other_realm.challenge(0.0)[0])[1]["nonce"]
    mine = make_auth()
    ch = mine.challenge(0.0)[0]
    real = parse_auth_params(ch)[1]["nonce"]
    assert mine.verify("INVITE", answer(ch.replace(real, nonce)), now=1.0).reason == "forged or foreign nonce"


@pytest.mark.parametrize("nonce", ["", "abc", "!!!!", "A" * 43, "A" * 100])
def test_garbage_nonce(nonce: str) -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    real = parse_auth_params(ch)[1]["nonce"]
    res = auth.verify("INVITE", answer(ch.replace(real, nonce)), now=1.0)
    assert not res.ok and not res.stale


def test_nonce_from_the_future() -> None:
    auth = make_auth()
    ch = auth.challenge(100.0)[0]
    assert auth.verify("INVITE", answer(ch), now=50.0).reason == "nonce from the future"


# ---- verify: replay ------------------------------------------------------------------------------------


def test_replayed_nc_is_refused() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    value = answer(ch, nc=3)
    assert auth.verify("INVITE", value, now=1.0).ok
    res = auth.verify("INVITE", value, now=2.0)
    assert not res.ok and res.reason == "replayed nc"
    res = auth.verify("INVITE", answer(ch, nc=2), now=2.0)
    assert res.reason == "replayed nc"
    assert auth.verify("INVITE", answer(ch, nc=4), now=2.0).ok


def test_failed_attempt_does_not_burn_nc() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    assert not auth.verify("INVITE", answer(ch, password="wrong"), now=1.0).ok
    assert auth.verify("INVITE", answer(ch), now=1.0).ok


def test_evicted_nonce_becomes_stale_never_replayable() -> None:
    auth = make_auth(max_tracked_nonces=2)
    chs = [auth.challenge(float(t))[0] for t in range(3)]
    first = answer(chs[0])
    assert auth.verify("INVITE", first, now=10.0).ok
    assert auth.verify("INVITE", answer(chs[1]), now=10.0).ok
    assert auth.verify("INVITE", answer(chs[2]), now=10.0).ok  # evicts chs[0]
    res = auth.verify("INVITE", first, now=11.0)
    assert not res.ok and res.stale
    fresh = auth.challenge(12.0)[0]
    assert auth.verify("INVITE", answer(fresh), now=12.0).ok


def test_expired_entries_are_forgotten() -> None:
    auth = make_auth(nonce_lifetime=10.0)
    for t in range(50):
        ch = auth.challenge(float(t))[0]
        assert auth.verify("INVITE", answer(ch), now=float(t)).ok
    assert len(auth._counters) <= 12


# ---- verify: failures ----------------------------------------------------------------------------------


def test_wrong_password() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch, password="guess"), now=1.0)
    assert res == AuthResult(False, "alice", False, "wrong response", "SHA-256")


def test_unknown_user() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch, username="mallory"), now=1.0)
    assert not res.ok and res.reason == "unknown user" and res.username == "mallory"


def test_wrong_realm() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch, realm="evil.example"), now=1.0)
    assert not res.ok and res.reason == "wrong realm"


def test_wrong_method() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    assert auth.verify("BYE", answer(ch, method="INVITE"), now=1.0).reason == "wrong response"


def test_opaque_mismatch_and_absent_opaque() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    opaque = parse_auth_params(ch)[1]["opaque"]
    assert auth.verify("INVITE", answer(ch).replace(opaque, "xyz"), now=1.0).reason == "opaque mismatch"
    assert auth.verify("INVITE", answer(ch, drop=("opaque",)), now=1.0).ok


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        (("username",), "missing or invalid username"),
        (("realm",), "missing parameter: realm"),
        (("nonce",), "missing parameter: nonce"),
        (("uri",), "missing parameter: uri"),
        (("response",), "missing parameter: response"),
        (("qop",), "missing parameter: qop"),
        (("nc",), "missing or malformed nc"),
        (("cnonce",), "missing parameter: cnonce"),
    ],
)
def test_missing_fields(drop: tuple[str, ...], reason: str) -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    res = auth.verify("INVITE", answer(ch, drop=drop), now=1.0)
    assert not res.ok and not res.stale
    assert res.reason == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing credentials"),
        ("", "missing credentials"),
        ("Basic YWxpY2U6d29uZGVybGFuZA==", "unsupported authentication scheme"),
        ('Digest username="alice", realm', "malformed credentials"),
        ('Digest username="alice', "malformed credentials"),
        ("Digest " + "a=b, " * 2000, "credentials too long"),
    ],
)
def test_malformed_values(value: str | None, reason: str) -> None:
    assert make_auth().verify("INVITE", value, now=0.0).reason == reason


def test_bad_qop_nc_response_shapes() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    assert auth.verify("INVITE", answer(ch, qop="auth-int"), now=1.0).reason == "unsupported qop"
    assert auth.verify("INVITE", answer(ch).replace("nc=00000001", "nc=1"), now=1.0).reason == (
        "missing or malformed nc"
    )
    assert auth.verify("INVITE", answer(ch, nc=0), now=1.0).reason == "malformed nc"
    v = answer(ch)
    resp = parse_auth_params(v)[1]["response"]
    assert auth.verify("INVITE", v.replace(resp, resp[:-1]), now=1.0).reason == "malformed response"
    assert auth.verify("INVITE", v.replace(resp, "z" * len(resp)), now=1.0).reason == "malformed response"
    assert auth.verify("INVITE", v.replace(resp, resp.upper()), now=1.0).ok  # hex case is irrelevant


def test_userhash_and_double_username_refused() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    assert not auth.verify("INVITE", answer(ch, extra=", userhash=true"), now=1.0).ok
    assert not auth.verify("INVITE", answer(ch, extra=", username*=UTF-8''bob"), now=1.0).ok


def test_bad_stored_ha1_is_a_failure_not_an_error() -> None:
    for stored in ("nothex", b"\xff\xfe", "ab" * 5):
        auth = DigestAuthenticator(REALM, lambda u, r, a, s=stored: s, SECRET)  # type: ignore[misc]
        ch = auth.challenge(0.0)[0]
        assert auth.verify("INVITE", answer(ch), now=1.0).reason == "unknown user"


def test_bytes_ha1_from_lookup() -> None:
    auth = DigestAuthenticator(REALM, lambda u, r, a: lookup(u, r, a).encode(), SECRET)  # type: ignore[union-attr]
    ch = auth.challenge(0.0)[0]
    assert auth.verify("INVITE", answer(ch), now=1.0).ok


def test_no_secret_in_results() -> None:
    auth = make_auth()
    ch = auth.challenge(0.0)[0]
    secrets = [USERS["alice"], compute_ha1("alice", REALM, USERS["alice"], "SHA-256")]
    for value in (answer(ch, password="guess"), answer(ch), answer(ch, nc=1)):
        res = auth.verify("INVITE", value, now=1.0)
        assert not any(s in repr(res) for s in secrets)


def test_auth_result_invariant() -> None:
    with pytest.raises(ValueError):
        AuthResult(True, None)
    with pytest.raises(ValueError):
        AuthResult(True, "a", stale=True)


# ---- hypothesis: nothing but a clean failure ------------------------------------------------------------

_AUTH = make_auth()
_CH = _AUTH.challenge(0.0)[0]

param_names = st.sampled_from(
    ["username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc",
     "userhash", "username*", "x"]
)  # fmt: skip
param_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from([REALM, "auth", "00000001", "MD5", "SHA-256-sess", "true", "UTF-8''%ff", '"', "\\"]),
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_random_strings_never_raise(value: str) -> None:
    res = _AUTH.verify("INVITE", value, now=1.0)
    assert isinstance(res, AuthResult) and not res.ok
    _AUTH.verify("INVITE", "Digest " + value, now=1.0)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(param_names, param_values, st.booleans()), max_size=12))
def test_random_digest_params_never_raise(items: list[tuple[str, str, bool]]) -> None:
    body = ", ".join(f'{k}="{v}"' if quoted else f"{k}={v}" for k, v, quoted in items)
    res = _AUTH.verify("INVITE", "Digest " + body, now=1.0)
    assert isinstance(res, AuthResult) and not res.ok


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400))
def test_mutated_valid_header_never_raises(cut: int) -> None:
    value = answer(_CH, nc=7)
    mutated = value[:cut] + value[cut + 1 :]
    res = _AUTH.verify("INVITE", mutated, now=1.0)
    assert isinstance(res, AuthResult)
