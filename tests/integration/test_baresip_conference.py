"""Ad hoc conferences that people can hear: three real baresip phones, TLS + mandatory SDES-SRTP.

The owner INVITEs the conference factory, the test reads the new conference URI from the server log, two
more phones dial it. Each phone sends its own pure tone from a wav (``aufile``); each phone's own recording
of what it received (decrypted and decoded by baresip itself) must hold the other two tones and not its own.
A capture of every media port shows SRTP/SRTCP only. When the owner hangs up, the focus ends every call.

Tones are 440/620/970 Hz rather than 440/660/880: with 440/660/880 the third-order intermodulation of any
two is exactly the third (2*660-440 = 880, 2*660-880 = 440), so G.711 quantisation or a mixer's clipping
would put a phone's "own" tone back into its recording. 440/620/970 have no such coincidence up to third
order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from audio import assert_hears, tone_levels, write_tone_wav
from baresip import BaresipError, BaresipPhone, free_udp_range
from capture import Capture, analyse_media, assert_srtp_only, read_pcap
from harness import MixerProcess, ServerProcess, free_port_pair, free_tcp_port

from peers import require_peer

TONES = {"alice": 440.0, "bob": 620.0, "carol": 970.0}
SUITE = "AES_CM_128_HMAC_SHA1_80"
CONF_CREATED = re.compile(r"event=conference_created\b.*?\bconf_uri=(?P<uri>\S+)")


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def explained(srv: ServerProcess, phones: list[BaresipPhone]) -> Iterator[None]:
    """Re-raise any failure with the server log tail and every phone's log tail and events attached."""
    try:
        yield
    except (AssertionError, BaresipError, RuntimeError, TimeoutError) as exc:
        parts = [str(exc), "", f"--- server log (last 60 lines, {srv.log_path}) ---", _tail(srv.log())]
        for p in phones:
            parts += ["", f"{p.name} events: {p.event_types()}", p.log_tail(30)]
        raise AssertionError("\n".join(parts)) from exc


def wait_conf_uri(srv: ServerProcess, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = CONF_CREATED.search(srv.log())
        if m:
            return m.group("uri").strip("<>,;\"'")
        time.sleep(0.05)
    raise AssertionError(f"no 'event=conference_created ... conf_uri=' server log line within {timeout} s")


def join_uri(conf_uri: str, tls_port: int) -> str:
    """``sip:conf-<id>@localhost`` -> ``sip:conf-<id>@127.0.0.1:<tls_port>``.

    The focus looks conferences up by the user part; the phone's account appends ``;transport=tls`` itself."""
    m = re.match(r"sips?:([^@;>]+)@", conf_uri)
    assert m, f"unexpected conference URI {conf_uri!r}"
    return f"sip:{m.group(1)}@127.0.0.1:{tls_port}"


def established(phone: BaresipPhone, timeout: float = 10.0) -> float:
    """Wait for CALL_ESTABLISHED and an SRTP CALL_MENC; the monotonic time the call was established."""
    ev = phone.wait_event("CALL_ESTABLISHED", timeout, fail_on=("CALL_CLOSED",))
    menc = phone.wait_event("CALL_MENC", 3.0, fail_on=("CALL_CLOSED",))
    assert SUITE in str(menc.get("param")), (
        f"{phone.name}: media encryption {menc.get('param')!r}, not {SUITE}"
    )
    return float(ev["_t"])


@dataclass
class ConfServer:
    proc: ServerProcess
    rtp_range: tuple[int, int]


@pytest.fixture(params=["in-process-mixer", "separate-mixer"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConfServer]:
    """The server with its mixer in process (default), or ``imsconf mixer`` in its own process over
    mutual TLS: the same phones must hear the same conference either way."""
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(100)
    cfg = tmp_path / "imsconf.toml"
    # baresip 1.0.0 resolves names with its own DNS client, which does not read /etc/hosts: the focus's
    # Contact (its in-dialog target) must be an address for it
    text = f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nfocus_host = "127.0.0.1"\n'
    mixer: MixerProcess | None = None
    if request.param == "separate-mixer":
        text += f'mixer = "127.0.0.1:{free_tcp_port()}"\n'
    cfg.write_text(text)
    try:
        if request.param == "separate-mixer":
            mixer = MixerProcess(srv.data_dir, "", cfg)
            mixer.listen = text.split('mixer = "')[1].split('"')[0]
            mixer.start()
        srv.start("--config", str(cfg), auth="none")
        yield ConfServer(srv, (lo, hi))
    finally:
        srv.stop()
        if mixer is not None:
            mixer.stop()
            assert "focus_connected cn=focus" in mixer.log(), mixer.log()[-2000:]


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_three_phones_hear_each_other_over_srtp_and_owner_leave_ends_all(
    server: ConfServer, tmp_path: Path
) -> None:
    require_peer("baresip")
    require_peer("dumpcap")
    srv, srv_rtp = server.proc, server.rtp_range
    pki = srv.data_dir / "pki"
    ca, combined = pki / "ca.pem", pki / "server-combined.pem"
    assert ca.exists() and combined.exists(), f"dev PKI missing in {pki}: {sorted(pki.glob('*'))}"
    phones = [
        BaresipPhone(
            name,
            tmp_path / name,
            tone_wav=write_tone_wav(tmp_path / f"{name}-{int(f)}.wav", f, seconds=120),
            ca_pem=ca,
            cert_combined_pem=combined,
        )
        for name, f in TONES.items()
    ]
    alice, bob, carol = phones
    cap = Capture(tmp_path / "media.pcap", [srv_rtp, *(p.rtp_ports for p in phones)])
    try:
        with explained(srv, phones):
            cap.start()
            for p in phones:
                p.start()

            # the owner creates the conference at the factory
            alice.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            t_alice = established(alice)
            conf_uri = wait_conf_uri(srv)
            target = join_uri(conf_uri, srv.tls_port)

            # two more join by the conference URI
            bob.dial(target)
            carol.dial(target)
            t_bob, t_carol = established(bob), established(carol)
            t_all = max(t_alice, t_bob, t_carol)
            time.sleep(max(0.0, t_all + 7.0 - time.monotonic()))  # ~7 s with all three talking
            t_hangup = time.monotonic()
            window = t_hangup - t_all - 2.5  # skip 2 s after the last join, 0.5 s before the hang-up

            # owner leaves: the focus must end every call
            alice.hangup()
            alice.wait_event("CALL_CLOSED", 5)
            for p in (bob, carol):
                ev = p.wait_event("CALL_CLOSED", 5)
                assert time.monotonic() - t_hangup < 5.0, f"{p.name}: CALL_CLOSED too late: {ev}"
            for p in phones:
                p.stop()
            cap.stop()

            # each phone hears the other two and not itself
            freqs = sorted(TONES.values())
            for p in phones:
                decs = p.dec_wavs()
                assert len(decs) == 1, f"{p.name}: expected one dec recording, found {decs}"
                # the recording ends at this phone's CALL_CLOSED, shortly after the owner's hang-up
                closed_at = float(p.wait_event("CALL_CLOSED", 0)["_t"])
                lv = tone_levels(
                    decs[0], freqs, last_seconds=window, drop_last_seconds=closed_at - t_hangup + 0.5
                )
                own = TONES[p.name]
                others = [f for f in freqs if f != own]
                assert_hears(lv, present=others, absent=[own], who=f"{p.name} (sends {own:g} Hz)")

            # media on the wire: SRTP only, in both directions for every phone
            rep = analyse_media(read_pcap(cap.pcap))
            assert_srtp_only(
                rep,
                tones=freqs,
                min_streams=6,
                min_packets_per_stream=100,
                baresip_rtcp_from=[p.rtp_ports for p in phones],
                where="conference media",
            )
            to_server = [s for s in rep.rtp.values() if srv_rtp[0] <= s.dport <= srv_rtp[1]]
            from_server = [s for s in rep.rtp.values() if srv_rtp[0] <= s.sport <= srv_rtp[1]]
            assert len(to_server) >= 3 and len(from_server) >= 3, rep.describe()
    finally:
        for p in phones:
            p.stop()
        cap.stop()
