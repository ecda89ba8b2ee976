"""linphone 5.1 in a conference, end to end: SIP over TLS (certificate verified), SDES-SRTP, both directions.

* baresip creates the conference at the factory, linphone (registered, so it subscribes to the conference
  event package by itself) joins by the conference URI; each hears the other's tone and not its own, the
  wire carries SRTP only, linphone's SUBSCRIBE is accepted and NOTIFYs reach it, its hang-up ends only its
  own leg.
* Two linphones: the owner creates the conference, the second joins, they hear each other; the owner's
  hang-up ends the other call (the focus sends BYE).
* Two registered linphones and a baresip: each hears the two others and not itself; linphone's conference
  object adds both others and removes the one who leaves (from the NOTIFYs); the leaver's subscription
  ends with a terminated NOTIFY; the owner's hang-up ends the baresip call.

Each phone sends its own pure tone from a wav and records what it hears (linphone: ``record FILE`` with
``soundcard use files``; baresip: ``sndfile``), so "media flows both ways" is checked on what each phone
itself decrypted and decoded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio import assert_hears, tone_levels, write_tone_wav
from baresip import BaresipPhone, free_udp_range
from capture import Capture, MediaReport, analyse_media, assert_srtp_only, read_pcap
from harness import ServerProcess
from linphone import (
    LinphoneError,
    LinphonePhone,
    conference_target,
    start_conf_server,
    wait_conference_user,
)

from peers import require_peer

ALICE, BOB, CAROL = 440.0, 620.0, 970.0
STUN_COOKIE = bytes.fromhex("2112a442")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, tuple[int, int]]]:
    lo, hi = free_udp_range(40)
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\n')
    srv = start_conf_server(tmp_path / "srv", cfg)
    try:
        yield srv, (lo, hi)
    finally:
        srv.stop()


def _explain(exc: BaseException, srv: ServerProcess, phones: list[LinphonePhone]) -> AssertionError:
    parts = [str(exc), "", "--- server log (last 40 lines) ---", *srv.log().splitlines()[-40:]]
    parts += [p.log_tail(40) for p in phones]
    return AssertionError("\n".join(parts))


def without_stun(rep: MediaReport) -> MediaReport:
    """linphone sends 20-byte STUN binding requests to the far RTP and RTCP ports (keep-alives, not media);
    everything else on the media ports must still be SRTP/SRTCP."""
    rep.other = [p for p in rep.other if not (len(p.payload) >= 20 and p.payload[4:8] == STUN_COOKIE)]
    return rep


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_linphone_joins_baresip_conference_over_tls_srtp_both_ways(
    server: tuple[ServerProcess, tuple[int, int]], tmp_path: Path
) -> None:
    require_peer("linphonec")
    require_peer("baresip")
    require_peer("dumpcap")
    srv, srv_rtp = server
    pki = srv.data_dir / "pki"
    ca = pki / "ca.pem"
    bob_wav = write_tone_wav(tmp_path / "bob.wav", BOB, seconds=60)
    bob = BaresipPhone("bob", tmp_path / "bob", tone_wav=bob_wav, ca_pem=ca,
                       cert_combined_pem=pki / "server-combined.pem")  # fmt: skip
    # alice registers at imsconf's own registrar (linphone subscribes only while registered; the 200's
    # Service-Route sends its SUBSCRIBE to the server's TLS port)
    alice = LinphonePhone("alice", tmp_path / "alice", ca_pem=ca,
                          registrar=f"sip:localhost:{srv.tls_port};transport=tls",
                          tone_wav=write_tone_wav(tmp_path / "alice.wav", ALICE, seconds=60))  # fmt: skip
    cap = Capture(tmp_path / "media.pcap", [srv_rtp, bob.rtp_ports, alice.rtp_ports])
    try:
        try:
            cap.start()
            bob.start()
            alice.start()
            alice.wait_registered()
            bob.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            bob.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
            conf = wait_conference_user(srv.log)

            mark = alice.call(conference_target(conf, srv.tls_port))
            alice.wait_call_state("StreamsRunning", 10, since=mark)
            t_join = time.monotonic()
            alice.wait_log(r"SSL handshake finished", 1)  # on REGISTER already: the call reuses it
            alice.wait_log(r"Negotiated media encryption is LinphoneMediaEncryptionSRTP", 1, since=mark)
            # its own conference client: SUBSCRIBE on the ;isfocus answer, accepted, NOTIFYs arrive
            alice.wait_log(r"NOTIFY received for conference", 5, since=mark)
            subs = [m for m in alice.responses("SUBSCRIBE", mark) if m.status == 200]
            assert subs, "alice's SUBSCRIBE got no 200 OK"
            time.sleep(6.0)

            # alice leaves: BYE answered, her leg ends, bob's call goes on
            mark = alice.terminate()
            alice.wait_call_state("Released", 5, since=mark)
            t_left = time.monotonic()
            byes = [m for m in alice.responses("BYE", mark) if m.status == 200]
            assert byes, "alice's BYE got no 200 OK"
            assert "pid=p2 reason=left" in srv.log(), "the server did not log alice's leave"
            time.sleep(1.0)
            assert "CALL_CLOSED" not in bob.event_types(), "bob's call ended with alice's leave"
            bob.hangup()
            bob_closed = float(bob.wait_event("CALL_CLOSED", 5)["_t"])
            bw = alice.bandwidth()
        except (AssertionError, LinphoneError, RuntimeError) as exc:
            raise _explain(exc, srv, [alice]) from exc
        finally:
            alice.stop()
            bob.stop()
            cap.stop()

        # linphone's own RTP counters: a stream in each direction. linphone offers Opus first and the focus
        # prefers it to G.711 (some 35-50 kbit/s with headers, where G.711 would be 64 + headers)
        assert len(bw) >= 4 and all(d > 20 and u > 20 for d, u in bw[1:-1]), (
            f"alice bandwidth (down, up): {bw}"
        )
        # each hears the other, not itself
        heard = tone_levels(alice.recording, [ALICE, BOB], 2.0, max_seconds=t_left - t_join - 3.0)
        assert_hears(heard, present=[BOB], absent=[ALICE], who="alice (linphone, sends 440 Hz)")
        decs = bob.dec_wavs()
        assert len(decs) == 1, decs
        lv = tone_levels(decs[0], [ALICE, BOB], last_seconds=t_left - t_join - 3.0,
                         drop_last_seconds=bob_closed - t_left + 0.5)  # fmt: skip
        assert_hears(lv, present=[ALICE], absent=[BOB], who="bob (baresip, sends 620 Hz)")
        # SRTP only on the wire, both directions of both legs
        rep = without_stun(analyse_media(read_pcap(cap.pcap)))
        assert_srtp_only(rep, tones=[ALICE, BOB], min_streams=4, min_packets_per_stream=100,
                         baresip_rtcp_from=[bob.rtp_ports], where="linphone and baresip")  # fmt: skip
        to_alice = [s for s in rep.rtp.values() if alice.rtp_ports[0] <= s.dport <= alice.rtp_ports[1]]
        from_alice = [s for s in rep.rtp.values() if alice.rtp_ports[0] <= s.sport <= alice.rtp_ports[1]]
        assert to_alice and from_alice, rep.describe()
        assert "event=registered aor=sip:alice@" in srv.log()
    finally:
        pass


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_two_linphones_hear_each_other_and_owner_leave_ends_the_other(
    server: tuple[ServerProcess, tuple[int, int]], tmp_path: Path
) -> None:
    require_peer("linphonec")
    srv, _ = server
    ca = srv.data_dir / "pki" / "ca.pem"
    alice = LinphonePhone("alice", tmp_path / "alice", ca_pem=ca,
                          tone_wav=write_tone_wav(tmp_path / "alice.wav", ALICE, seconds=60))  # fmt: skip
    carol = LinphonePhone("carol", tmp_path / "carol", ca_pem=ca,
                          tone_wav=write_tone_wav(tmp_path / "carol.wav", CAROL, seconds=60))  # fmt: skip
    phones = [alice, carol]
    try:
        alice.start()
        carol.start()
        mark_a = alice.call(f"sip:conference-factory@localhost:{srv.tls_port};transport=tls")
        alice.wait_call_state("StreamsRunning", 10, since=mark_a)
        conf = wait_conference_user(srv.log)
        mark_c = carol.call(conference_target(conf, srv.tls_port))
        carol.wait_call_state("StreamsRunning", 10, since=mark_c)
        t_join = time.monotonic()
        for p in phones:
            p.wait_log(r"Negotiated media encryption is LinphoneMediaEncryptionSRTP", 1)
        time.sleep(6.0)
        # the owner leaves: the focus ends carol's call with a BYE
        mark_a, mark_c = alice.terminate(), carol.mark()
        alice.wait_call_state("Released", 5, since=mark_a)
        t_left = time.monotonic()
        carol.wait_call_state("End", 5, since=mark_c)
        assert carol.received("BYE", mark_c), "carol got no BYE from the focus"
        carol.wait_call_state("Released", 5, since=mark_c)
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise _explain(exc, srv, phones) from exc
    finally:
        for p in phones:
            p.stop()
    window = t_left - t_join - 3.0
    for p, own, other in ((alice, ALICE, CAROL), (carol, CAROL, ALICE)):
        # both recordings end within a fraction of a second of the owner's hang-up
        lv = tone_levels(p.recording, [ALICE, CAROL], last_seconds=window, drop_last_seconds=1.0)
        assert_hears(lv, present=[other], absent=[own], who=f"{p.name} (linphone, sends {own:g} Hz)")


def _baresip_target(conf: str, tls_port: int) -> str:
    """baresip dials the conference at the server's address: its resolver does not read /etc/hosts."""
    return f"sip:{conf}@127.0.0.1:{tls_port};transport=tls"


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_two_linphones_and_baresip_hear_the_two_others_and_follow_the_roster(
    server: tuple[ServerProcess, tuple[int, int]], tmp_path: Path
) -> None:
    """Two registered linphones and one baresip over TLS + SDES-SRTP: each hears the two others and not
    itself; linphone's own conference object follows the roster from the NOTIFYs (joins, a leave), and the
    linphone that leaves gets its subscription ended with a terminated NOTIFY."""
    require_peer("linphonec")
    require_peer("baresip")
    srv, _ = server
    pki = srv.data_dir / "pki"
    ca = pki / "ca.pem"
    registrar = f"sip:localhost:{srv.tls_port};transport=tls"
    alice = LinphonePhone("alice", tmp_path / "alice", ca_pem=ca, registrar=registrar,
                          tone_wav=write_tone_wav(tmp_path / "alice.wav", ALICE, seconds=60))  # fmt: skip
    carol = LinphonePhone("carol", tmp_path / "carol", ca_pem=ca, registrar=registrar,
                          tone_wav=write_tone_wav(tmp_path / "carol.wav", CAROL, seconds=60))  # fmt: skip
    bob_wav = write_tone_wav(tmp_path / "bob.wav", BOB, seconds=60)
    bob = BaresipPhone("bob", tmp_path / "bob", tone_wav=bob_wav, ca_pem=ca,
                       cert_combined_pem=pki / "server-combined.pem")  # fmt: skip
    linphones = [alice, carol]
    try:
        for p in linphones:
            p.start()
            p.wait_registered()
        bob.start()
        mark_a = alice.call(f"sip:conference-factory@localhost:{srv.tls_port};transport=tls")
        alice.wait_call_state("StreamsRunning", 10, since=mark_a)
        conf = wait_conference_user(srv.log)
        bob.dial(_baresip_target(conf, srv.tls_port))
        bob.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
        mark_c = carol.call(conference_target(conf, srv.tls_port))
        carol.wait_call_state("StreamsRunning", 10, since=mark_c)
        t_all = time.monotonic()
        # alice's conference object learnt both joins from the NOTIFYs
        for who in ("bob", "carol"):
            alice.wait_log(rf"Addition of participant with address \S*\(sip:{who}@[^)]*\) .*successful", 10)
        time.sleep(6.0)
        # carol leaves: her subscription ends with a terminated NOTIFY, alice's roster drops her
        mark_a, mark_c = alice.mark(), carol.terminate()
        carol.wait_call_state("Released", 5, since=mark_c)
        t_carol_left = time.monotonic()
        ended = [n for n in carol.received("NOTIFY", mark_c)
                 if any(v.startswith("terminated") for v in n.header("Subscription-State"))]  # fmt: skip
        assert ended, "carol's subscription got no terminated NOTIFY"
        alice.wait_log(
            r"Removal of participant with address \S*\(sip:carol@[^)]*\) .*successful", 10, since=mark_a
        )
        states = alice.conference_states()
        assert "TerminationPending" not in states, f"alice's conference object ended: {states}"
        time.sleep(2.0)
        # the owner leaves: the focus ends bob's call
        mark_a = alice.terminate()
        alice.wait_call_state("Released", 5, since=mark_a)
        t_alice_left = time.monotonic()
        t_bob_closed = float(bob.wait_event("CALL_CLOSED", 5)["_t"])
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise _explain(exc, srv, linphones) from exc
    finally:
        for p in linphones:
            p.stop()
        bob.stop()
    # the three-party window: from 1 s after carol's join to 0.5 s before her leave
    three = t_carol_left - t_all - 1.5
    lv = tone_levels(alice.recording, [ALICE, BOB, CAROL], 0.0, last_seconds=t_alice_left - t_all - 1.0,
                     drop_last_seconds=t_alice_left - t_carol_left + 0.5)  # fmt: skip
    assert_hears(lv, present=[BOB, CAROL], absent=[ALICE], who="alice (linphone, sends 440 Hz)")
    lv = tone_levels(carol.recording, [ALICE, BOB, CAROL], 2.0, max_seconds=three - 1.0)
    assert_hears(lv, present=[ALICE, BOB], absent=[CAROL], who="carol (linphone, sends 970 Hz)")
    decs = bob.dec_wavs()
    assert len(decs) == 1, decs
    lv = tone_levels(decs[0], [ALICE, BOB, CAROL], 0.0, last_seconds=t_bob_closed - t_all - 1.0,
                     drop_last_seconds=t_bob_closed - t_carol_left + 0.5)  # fmt: skip
    assert_hears(lv, present=[ALICE, CAROL], absent=[BOB], who="bob (baresip, sends 620 Hz)")
