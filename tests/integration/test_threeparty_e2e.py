"""Three-party conference end to end (TS 24.605 3PTY) with audio: Python test UAs A, B, C (SRTP).

A talks with B and with C (one-to-one dialogs the server is not part of), holds both, creates a conference at
the factory and REFERs the focus twice with ``Replaces`` of the A-B and A-C dialogs embedded in Refer-To.  The
focus INVITEs B and C with ``Replaces``; each accepts and BYEs its dialog with A.  Then each of A, B, C hears
the other two tones (and not its own), the one-to-one dialogs are gone, and A can hold the conference leg (a
one-to-one toggle on A's side) and come back.

Signalling runs over UDP with ``allow_sdes_over_udp`` (the test UAs' TLS would need certificates from the
server's CA); the media is SDES-SRTP throughout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uas import Call, UserAgent, tone_present

pytestmark = pytest.mark.peer

TONES = {"alice": 440.0, "bob": 1000.0, "carol": 1700.0}

# RTP ports chosen free at run time (fixed ranges collide with other servers on the machine)
_RTP = free_udp_range(200)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("threeparty")
    cfg = base / "imsconf.toml"
    cfg.write_text(f"allow_sdes_over_udp = true\nrtp_port_range = [{_RTP[0]}, {_RTP[1]}]\n")
    srv = ServerProcess(base / "var", free_port_pair())
    srv.start("--config", str(cfg), auth="none")
    yield srv
    srv.stop()


@pytest.fixture
def uas() -> Iterator[dict[str, UserAgent]]:
    started = {
        u: UserAgent(u, transport="udp", tone_hz=hz, rtcp_interval=0.5).start() for u, hz in TONES.items()
    }
    yield started
    for ua in started.values():
        ua.close()


def hears(call: Call, user: str, since: float) -> float:
    return tone_present(call.media.audio(since=since), TONES[user])


def one_to_one(a: UserAgent, b: UserAgent) -> tuple[Call, Call]:
    ab = a.call(b.contact_uri)
    assert ab.state == "confirmed", ab.final_response
    ba = b.wait_call(2)
    assert ba.wait_confirmed(2)
    return ab, ba


def test_three_party_merge_with_audio(server: ServerProcess, uas: dict[str, UserAgent]) -> None:
    a, b, c = uas["alice"], uas["bob"], uas["carol"]
    ab, ba = one_to_one(a, b)
    ac, ca = one_to_one(a, c)
    assert ab.hold().status == 200 and ac.hold().status == 200
    af = a.call(f"sip:conference-factory@127.0.0.1:{server.port}")
    assert af.state == "confirmed", af.final_response
    assert af.remote_target is not None and ";isfocus" in (af.final_response.get("Contact") or "")  # type: ignore[union-attr]
    # merge B, then C: REFER to the focus in A's conference dialog, Replaces of A's dialog with each
    for old_a, old_peer in ((ab, ba), (ac, ca)):
        resp = af.refer(old_peer.ua.contact_uri, replaces=old_a)
        assert resp.status == 202
        assert old_peer.wait_terminated(5) and old_peer.terminated_by == "replaced"
        assert old_a.wait_terminated(5) and old_a.terminated_by == "remote"  # the one-to-one dialog is gone
        new = old_peer.replaced_by
        assert new is not None and new.wait_confirmed(5)
    bf, cf = ba.replaced_by, ca.replaced_by
    assert bf is not None and cf is not None
    time.sleep(0.3)
    t = time.monotonic()
    time.sleep(1.0)
    for call, me, others in ((af, "alice", ("bob", "carol")), (bf, "bob", ("alice", "carol")),
                             (cf, "carol", ("alice", "bob"))):  # fmt: skip
        levels = {u: round(hears(call, u, t), 1) for u in TONES}
        assert all(levels[o] > -20 for o in others), (me, levels)
        assert levels[me] < levels[others[0]] - 10, (me, levels)  # N-1: not its own voice
    # A toggles to a one-to-one session: it holds the conference leg, then comes back
    assert af.hold().status == 200
    time.sleep(0.3)
    t = time.monotonic()
    time.sleep(0.6)
    assert hears(bf, "alice", t) < -30 and hears(bf, "carol", t) > -20
    assert af.resume().status == 200
    time.sleep(0.3)
    t = time.monotonic()
    time.sleep(0.8)
    assert hears(af, "bob", t) > -20 and hears(bf, "alice", t) > -20
    log = server.log()
    assert log.count("event=refer_accepted") == 2 and "event=conference_created" in log
