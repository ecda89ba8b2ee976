"""The registrar core (RFC 3261 §10.3, RFC 3327 Path, RFC 3608 Service-Route) on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reg_helpers import DOMAIN, PHONE, SERVICE_ROUTE, register, registrar

from imsconf.registrar.core import Registrar, RegistrarConfig
from imsconf.sip.message import Request, Response
from imsconf.sip.peer import Peer
from imsconf.sip.uri import NameAddr

NOW = 1000.0
A1 = "<sip:alice@198.51.100.7:5070>"
A2 = "<sip:alice@198.51.100.8:5080;transport=tcp>"


def contacts(resp: Response) -> dict[str, dict[str, str | None]]:
    out: dict[str, dict[str, str | None]] = {}
    for value in resp.headers.get_all("Contact"):
        addr = NameAddr.parse(value)
        out[str(addr.uri)] = addr.params
    return out


def ok(reg: Registrar, req: Request, *, now: float = NOW, user: str | None = "alice") -> Response:
    resp = reg.register(req, PHONE, user, now, service_route=SERVICE_ROUTE)
    assert resp.status == 200, (resp.status, resp.reason)
    return resp


def refused(reg: Registrar, req: Request, *, user: str | None = "alice") -> Response:
    resp = reg.register(req, PHONE, user, NOW)
    assert resp.status >= 300
    return resp


# ---- bindings and the 200 -------------------------------------------------------------------------


def test_register_binds_and_the_200_lists_the_binding_with_service_route() -> None:
    reg = registrar()
    resp = ok(reg, register(expires="600"))
    assert contacts(resp) == {"sip:alice@198.51.100.7:5070": {"expires": "600"}}
    assert resp.headers.get_all("Service-Route") == [SERVICE_ROUTE]
    assert resp.to.tag
    (b,) = reg.lookup(f"sip:alice@{DOMAIN}", NOW)
    assert str(b.uri) == "sip:alice@198.51.100.7:5070" and b.flow == PHONE
    assert [c.aor for c in reg.take_changes()] == [f"sip:alice@{DOMAIN}"]
    assert reg.take_changes() == []


def test_the_200_lists_every_current_binding_with_its_remaining_time() -> None:
    reg = registrar()
    ok(reg, register(contacts=(A1,), expires="600"))
    resp = ok(reg, register(contacts=(A2,), expires="300", call_id="other"), now=NOW + 100)
    assert contacts(resp) == {
        "sip:alice@198.51.100.7:5070": {"expires": "500"},
        "sip:alice@198.51.100.8:5080;transport=tcp": {"expires": "300"},
    }


def test_a_query_without_contact_lists_the_bindings_and_changes_nothing() -> None:
    reg = registrar()
    ok(reg, register(expires="600"))
    reg.take_changes()
    resp = ok(reg, register(contacts=(), cseq=2), now=NOW + 10)
    assert contacts(resp) == {"sip:alice@198.51.100.7:5070": {"expires": "590"}}
    assert reg.take_changes() == []


def test_refresh_with_a_higher_cseq_extends_the_binding() -> None:
    reg = registrar()
    ok(reg, register(expires="600"))
    resp = ok(reg, register(expires="900", cseq=2), now=NOW + 500)
    assert contacts(resp)["sip:alice@198.51.100.7:5070"] == {"expires": "900"}
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW + 1300)) == 1


def test_contacts_compare_by_uri_equivalence() -> None:
    reg = registrar()
    ok(reg, register(contacts=("<sip:alice@198.51.100.7:5070;foo=1>",)))
    ok(reg, register(contacts=("<sip:alice@198.51.100.7:5070;FOO=1>",), cseq=2))
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW)) == 1


# ---- expiry ----------------------------------------------------------------------------------------


def test_contact_expires_parameter_wins_over_the_header() -> None:
    reg = registrar()
    resp = ok(reg, register(contacts=(f"{A1};expires=120", A2), expires="700"))
    assert contacts(resp) == {
        "sip:alice@198.51.100.7:5070": {"expires": "120"},
        "sip:alice@198.51.100.8:5080;transport=tcp": {"expires": "700"},
    }


def test_default_expiry_and_the_maximum() -> None:
    reg = registrar(default_expires=1800, max_expires=3600)
    assert contacts(ok(reg, register()))["sip:alice@198.51.100.7:5070"] == {"expires": "1800"}
    resp = ok(reg, register(expires="99999999999999", cseq=2))
    assert contacts(resp)["sip:alice@198.51.100.7:5070"] == {"expires": "3600"}


def test_too_brief_is_423_with_min_expires() -> None:
    reg = registrar(min_expires=60)
    resp = refused(reg, register(expires="30"))
    assert (resp.status, resp.headers.get("Min-Expires")) == (423, "60")
    resp = refused(reg, register(contacts=(f"{A1};expires=1",)))
    assert (resp.status, resp.headers.get("Min-Expires")) == (423, "60")
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW) == []


def test_expires_zero_removes_one_binding() -> None:
    reg = registrar()
    ok(reg, register(contacts=(A1, A2)))
    resp = ok(reg, register(contacts=(f"{A1};expires=0",), cseq=2))
    assert list(contacts(resp)) == ["sip:alice@198.51.100.8:5080;transport=tcp"]


def test_bindings_expire_on_the_timer_and_the_change_is_recorded() -> None:
    reg = registrar()
    ok(reg, register(contacts=(f"{A1};expires=100", A2), expires="300"))
    reg.take_changes()
    assert reg.next_deadline() == NOW + 100
    reg.handle_timer(NOW + 100)
    assert [str(b.uri) for b in reg.lookup(f"sip:alice@{DOMAIN}", NOW + 100)] == [
        "sip:alice@198.51.100.8:5080;transport=tcp"
    ]
    (change,) = reg.take_changes()
    assert len(change.bindings) == 1
    assert reg.next_deadline() == NOW + 300
    reg.handle_timer(NOW + 300)
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW + 300) == []
    assert reg.take_changes()[0].bindings == ()
    assert reg.next_deadline() is None
    assert reg.aors() == []


def test_an_expired_binding_is_not_looked_up_before_the_timer_runs() -> None:
    reg = registrar()
    ok(reg, register(expires="100"))
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW + 100) == []


def test_a_refreshed_aor_outlives_its_old_deadline() -> None:
    reg = registrar()
    ok(reg, register(expires="100"))
    ok(reg, register(expires="500", cseq=2), now=NOW + 50)
    reg.handle_timer(NOW + 100)
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW + 100)) == 1
    assert reg.next_deadline() == NOW + 550


# ---- Contact: * ------------------------------------------------------------------------------------


def test_star_with_expires_zero_removes_all() -> None:
    reg = registrar()
    ok(reg, register(contacts=(A1, A2)))
    resp = ok(reg, register(contacts=("*",), expires="0", cseq=2))
    assert resp.headers.get_all("Contact") == []
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW) == []


def test_star_from_another_call_id_removes_all() -> None:
    reg = registrar()
    ok(reg, register(contacts=(A1,)))
    ok(reg, register(contacts=("*",), expires="0", call_id="another", cseq=1))
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW) == []


@pytest.mark.parametrize("expires", [None, "60"])
def test_star_needs_expires_zero(expires: str | None) -> None:
    resp = refused(registrar(), register(contacts=("*",), expires=expires))
    assert resp.status == 400 and "Expires: 0" in resp.reason


def test_star_with_other_contacts_is_400() -> None:
    resp = refused(registrar(), register(contacts=("*", A1), expires="0"))
    assert resp.status == 400 and "Contact" in resp.reason


def test_star_with_an_old_cseq_is_refused_and_removes_nothing() -> None:
    reg = registrar()
    ok(reg, register(cseq=5))
    resp = refused(reg, register(contacts=("*",), expires="0", cseq=4))
    assert resp.status == 500 and "CSeq" in resp.reason
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW)) == 1


# ---- ordering (§10.3 step 7) -----------------------------------------------------------------------


@pytest.mark.parametrize("cseq", [4, 5])
def test_same_call_id_with_a_cseq_not_higher_aborts_the_whole_request(cseq: int) -> None:
    reg = registrar()
    ok(reg, register(contacts=(A1,), expires="600", cseq=5))
    reg.take_changes()
    resp = refused(reg, register(contacts=(A2, f"{A1};expires=0"), cseq=cseq))
    assert resp.status == 500 and "CSeq out of order" in resp.reason
    # nothing committed: A1 kept, A2 not added
    assert [str(b.uri) for b in reg.lookup(f"sip:alice@{DOMAIN}", NOW)] == ["sip:alice@198.51.100.7:5070"]
    assert reg.take_changes() == []


def test_another_call_id_updates_whatever_its_cseq() -> None:
    reg = registrar()
    ok(reg, register(expires="600", cseq=50))
    resp = ok(reg, register(expires="900", call_id="rebooted", cseq=1))
    assert contacts(resp)["sip:alice@198.51.100.7:5070"] == {"expires": "900"}
    (b,) = reg.lookup(f"sip:alice@{DOMAIN}", NOW)
    assert (b.call_id, b.cseq) == ("rebooted", 1)


def test_another_call_id_with_expires_zero_removes() -> None:
    reg = registrar()
    ok(reg, register(cseq=50))
    ok(reg, register(expires="0", call_id="rebooted", cseq=1))
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW) == []


# ---- q-values and lookup order ---------------------------------------------------------------------


def test_lookup_is_best_q_first_then_newest() -> None:
    reg = registrar()
    ok(reg, register(contacts=(f"{A1};q=0.5",), call_id="one"))
    ok(reg, register(contacts=(f"{A2};q=0.9",), call_id="two"), now=NOW + 1)
    ok(reg, register(contacts=("<sip:alice@198.51.100.9>;q=0.5",), call_id="three"), now=NOW + 2)
    order = [str(b.uri) for b in reg.lookup(f"sip:alice@{DOMAIN}", NOW + 3)]
    assert order == [
        "sip:alice@198.51.100.8:5080;transport=tcp",
        "sip:alice@198.51.100.9",
        "sip:alice@198.51.100.7:5070",
    ]


def test_the_200_repeats_q_when_given() -> None:
    resp = ok(registrar(), register(contacts=(f"{A1};q=0.25", A2)))
    assert contacts(resp)["sip:alice@198.51.100.7:5070"] == {"expires": "3600", "q": "0.25"}
    assert contacts(resp)["sip:alice@198.51.100.8:5080;transport=tcp"] == {"expires": "3600"}


def test_a_bad_q_is_400_naming_it() -> None:
    resp = refused(registrar(), register(contacts=(f"{A1};q=1.5",)))
    assert resp.status == 400 and "q parameter in Contact" in resp.reason


# ---- who may register what --------------------------------------------------------------------------


def test_another_users_aor_is_403() -> None:
    resp = refused(registrar(), register(), user="mallory")
    assert resp.status == 403 and "To" in resp.reason


def test_no_credentials_is_403_when_authentication_is_required() -> None:
    assert refused(registrar(), register(), user=None).status == 403


def test_without_authentication_anyone_registers() -> None:
    reg = registrar(require_auth=False)
    ok(reg, register(), user=None)
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW)) == 1


def test_foreign_domains_are_404() -> None:
    reg = registrar()
    resp = refused(reg, register(to="<sip:alice@elsewhere.org>"))
    assert resp.status == 404 and "To" in resp.reason
    resp = refused(reg, register(ruri="sip:elsewhere.org"))
    assert resp.status == 404 and "Request-URI" in resp.reason
    resp = refused(reg, register(to=f"<sip:{DOMAIN}>"))
    assert resp.status == 404


def test_the_aor_is_the_to_uri_without_parameters() -> None:
    reg = registrar()
    ok(reg, register(to=f"<sip:alice@{DOMAIN.upper()};user=phone>"))
    assert len(reg.lookup(f"sip:alice@{DOMAIN}", NOW)) == 1


def test_too_many_bindings_is_refused() -> None:
    reg = registrar(max_bindings=2)
    ok(reg, register(contacts=(A1, A2)))
    resp = refused(reg, register(contacts=("<sip:alice@198.51.100.9>",), cseq=2))
    assert resp.status == 403 and "bindings" in resp.reason


def test_a_full_registrar_refuses_new_aors_only() -> None:
    reg = registrar(max_aors=1)
    ok(reg, register())
    assert refused(reg, register("bob"), user="bob").status == 503
    ok(reg, register(cseq=2))  # alice's refresh still works


# ---- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "\uff16\uff10"])
def test_a_bad_expires_header_is_400_naming_it(value: str) -> None:
    resp = refused(registrar(), register(expires=value))
    assert resp.status == 400 and "Expires" in resp.reason


def test_a_bad_expires_parameter_is_400_naming_it() -> None:
    resp = refused(registrar(), register(contacts=(f"{A1};expires=soon",)))
    assert resp.status == 400 and "expires parameter in Contact" in resp.reason


def test_a_non_sip_contact_is_400_naming_contact() -> None:
    resp = refused(registrar(), register(contacts=("<tel:+15551234>",)))
    assert resp.status == 400 and "Contact" in resp.reason


# ---- Path (RFC 3327) and the Service-Route ---------------------------------------------------------


def test_path_is_stored_as_the_route_set_and_echoed_when_supported() -> None:
    reg = registrar()
    path = ("<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>")
    resp = ok(reg, register(extra=(("Path", ", ".join(path)), ("Supported", "path"))))
    assert resp.headers.get_all("Path") == list(path)
    (b,) = reg.lookup(f"sip:alice@{DOMAIN}", NOW)
    assert b.path == path


def test_path_is_not_echoed_to_a_ua_without_path_support() -> None:
    reg = registrar()
    resp = ok(reg, register(extra=(("Path", "<sip:p1.example.net;lr>"),)))
    assert resp.headers.get_all("Path") == []
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW)[0].path == ("<sip:p1.example.net;lr>",)


def test_a_bad_path_is_400() -> None:
    resp = refused(registrar(), register(extra=(("Path", "<tel:123>"),)))
    assert resp.status == 400 and "Path" in resp.reason


def test_no_service_route_when_none_is_given() -> None:
    reg = registrar()
    resp = reg.register(register(), PHONE, "alice", NOW)
    assert resp.status == 200 and resp.headers.get_all("Service-Route") == []


def test_loaded_bindings_drop_the_expired_ones() -> None:
    reg = registrar()
    ok(reg, register(contacts=(f"{A1};expires=100", A2), expires="600"))
    stored = reg.lookup(f"sip:alice@{DOMAIN}", NOW)
    again = Registrar(RegistrarConfig(domains=frozenset({DOMAIN})), stored, now=NOW + 200)
    assert [str(b.uri) for b in again.lookup(f"sip:alice@{DOMAIN}", NOW + 200)] == [
        "sip:alice@198.51.100.8:5080;transport=tcp"
    ]
    assert again.take_changes() == []


def test_config_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        RegistrarConfig(min_expires=100, default_expires=50)
    with pytest.raises(ValueError):
        RegistrarConfig(max_bindings=0)


def test_flow_is_the_registering_peer() -> None:
    reg = registrar()
    peer = Peer("tcp", "198.51.100.7", 40001, 7)
    resp = reg.register(register(), peer, "alice", NOW)
    assert resp.status == 200
    assert reg.lookup(f"sip:alice@{DOMAIN}", NOW)[0].flow == peer


def test_a_contact_named_twice_in_one_request_takes_the_last() -> None:
    reg = registrar()
    resp = ok(reg, register(contacts=(f"{A1};expires=600", f"{A1};expires=300")))
    assert contacts(resp) == {"sip:alice@198.51.100.7:5070": {"expires": "300"}}
    resp = ok(reg, register(contacts=(A1, f"{A1};expires=0"), cseq=2))
    assert contacts(resp) == {}


_op = st.tuples(
    st.lists(st.sampled_from([A1, A2, "<sip:alice@198.51.100.9>", "*"]), max_size=3),
    st.one_of(st.none(), st.sampled_from(["0", "30", "60", "600", "99999"])),
    st.sampled_from(["c1", "c2"]),
    st.integers(min_value=-1, max_value=2),  # CSeq step (0 and -1: out of order for the same Call-ID)
    st.floats(min_value=0, max_value=2000),  # time step
)


@given(st.lists(_op, max_size=12))
def test_any_sequence_of_registers_keeps_the_table_consistent(
    ops: list[tuple[list[str], str | None, str, int, float]],
) -> None:
    reg = registrar(max_bindings=2)
    now, cseqs = NOW, {"c1": 10, "c2": 10}
    for items, expires, call_id, step, dt in ops:
        now += dt
        cseqs[call_id] += step
        resp = reg.register(
            register(contacts=tuple(items), expires=expires, call_id=call_id, cseq=max(1, cseqs[call_id])),
            PHONE, "alice", now,
        )  # fmt: skip
        assert resp.status in (200, 400, 403, 423, 500)
        reg.handle_timer(now)
        found = reg.lookup(f"sip:alice@{DOMAIN}", now)
        assert len(found) <= 2 and all(b.expires_at > now for b in found)
        assert [(-b.q, -b.registered_at) for b in found] == sorted((-b.q, -b.registered_at) for b in found)
        if resp.status == 200:
            assert len(resp.headers.get_all("Contact")) == len(found)
        if reg.aors():
            d = reg.next_deadline()
            assert d is not None and d > now
