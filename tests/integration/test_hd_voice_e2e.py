"""HD voice end to end: real baresip phones with AMR-WB, G.722, Opus and PCMU in one conference, TLS +
SDES-SRTP.

Each phone offers one codec only (``audio_codecs`` of its account), so the focus must answer it with that
codec (G.722 and Opus alone got 488 before the focus negotiated HD voice); the mixer decodes each leg with
its own codec, mixes, and encodes each listener's mix in its codec. Each phone sends its own tone; its own
recording of what it received (decoded by baresip) must hold the other two and not its own. The server's
mixer runs in process and, in a second run, as ``imsconf mixer`` over its control channel (the codec
crosses it). The answer's codec is read from the phone's SIP trace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from audio import ToneLevels, assert_hears, tone_levels, write_tone_wav
from baresip import BaresipPhone, free_udp_range
from harness import MixerProcess, ServerProcess, free_port_pair, free_tcp_port
from test_baresip_conference import established, explained, join_uri, wait_conf_uri

from peers import in_ci, require_peer

MODULE_DIR = Path("/usr/lib/baresip/modules")


@dataclass(frozen=True)
class Spec:
    codecs: str  # baresip's audio_codecs: the one codec the phone offers
    module: str  # the baresip module it needs
    rtpmap: str  # what the focus's answer must carry
    tone: float
    amplitude: float = 0.25
    rate: int = 8000  # of the tone wav and baresip's audio source


G722 = Spec("g722", "g722.so", "G722/8000", 440.0)
OPUS = Spec("opus", "opus.so", "opus/48000/2", 620.0)
PCMU = Spec("pcmu", "g711.so", "PCMU/8000", 970.0)
# baresip's path from an 8 kHz source into its AMR-WB encoder loses some 15 dB: a 16 kHz source
AMRWB = Spec("amr-wb", "amr.so", "AMR-WB/16000", 1400.0, rate=16000)


def require_module(name: str) -> None:
    if not (MODULE_DIR / name).exists():
        msg = f"baresip module {name} is not installed (scripts/install-test-deps.sh installs it)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(params=["in-process-mixer", "separate-mixer"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(100)
    cfg = tmp_path / "imsconf.toml"
    # baresip resolves names with its own DNS client: the focus's Contact must be an address for it
    text = f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nfocus_host = "127.0.0.1"\n'
    mixer: MixerProcess | None = None
    if request.param == "separate-mixer":
        listen = f"127.0.0.1:{free_tcp_port()}"
        text += f'mixer = "{listen}"\n'
        mixer = MixerProcess(srv.data_dir, listen, cfg)
    cfg.write_text(text)
    try:
        if mixer is not None:
            mixer.start()
        srv.start("--config", str(cfg), auth="none")
        yield srv
    finally:
        srv.stop()
        if mixer is not None:
            mixer.stop()
            log = mixer.log()
            assert "Traceback" not in log, log[-3000:]


def answered_codec(phone: BaresipPhone) -> str | None:
    """The audio rtpmap of the 200 OK the phone received (its SIP trace)."""
    text = phone.sip_messages()
    start = text.find("SIP/2.0 200 OK")
    m = re.search(r"a=rtpmap:\d+ ([^\r\n]+)", text[start:]) if start >= 0 else None
    return m.group(1).strip() if m else None


def run_conference(
    srv: ServerProcess, tmp_path: Path, specs: dict[str, Spec], extra_freqs: tuple[float, ...] = ()
) -> dict[str, ToneLevels]:
    """The first phone creates the conference, the others join; all talk ~7 s, then hang up. Checks each
    phone's answered codec; returns what each heard (levels of every phone's tone and of *extra_freqs*)."""
    require_peer("baresip")
    for spec in specs.values():
        require_module(spec.module)
    pki = srv.data_dir / "pki"
    ca, combined = pki / "ca.pem", pki / "server-combined.pem"
    phones = [
        BaresipPhone(
            name,
            tmp_path / name,
            tone_wav=write_tone_wav(
                tmp_path / f"{name}.wav", s.tone, seconds=120, amplitude=s.amplitude, rate=s.rate
            ),
            ausrc_srate=s.rate,
            ca_pem=ca,
            cert_combined_pem=combined,
            codecs=s.codecs,
            extra_config=f"module\t{s.module}" if s.module != "g711.so" else "",
        )
        for name, s in specs.items()
    ]
    owner, *others = phones
    heard: dict[str, ToneLevels] = {}
    try:
        with explained(srv, phones):
            for p in phones:
                p.start()
            owner.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            t_owner = established(owner)
            target = join_uri(wait_conf_uri(srv), srv.tls_port)
            for p in others:
                p.dial(target)
            t_all = max([t_owner, *(established(p) for p in others)])
            time.sleep(max(0.0, t_all + 7.0 - time.monotonic()))
            t_hangup = time.monotonic()
            window = t_hangup - t_all - 2.5
            for p in [*others, owner]:
                p.hangup()
                p.wait_event("CALL_CLOSED", 5)
            for p in phones:
                p.stop()
            for p in phones:
                got = answered_codec(p)
                assert got == specs[p.name].rtpmap, f"{p.name}: answered {got!r}"
            freqs = sorted({*(s.tone for s in specs.values()), *extra_freqs})
            for p in phones:
                decs = p.dec_wavs()
                assert len(decs) == 1, f"{p.name}: expected one dec recording, found {decs}"
                closed_at = float(p.wait_event("CALL_CLOSED", 0)["_t"])
                heard[p.name] = tone_levels(
                    decs[0], freqs, last_seconds=window, drop_last_seconds=closed_at - t_hangup + 0.5
                )
            log = srv.log()
            assert "Traceback" not in log, log[-3000:]
    finally:
        for p in phones:
            p.stop()
    return heard


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_amr_wb_opus_g722_and_pcmu_phones_in_one_conference(server: ServerProcess, tmp_path: Path) -> None:
    """Four phones, four codecs. The mixer mixes the three loudest: the PCMU phone talks more quietly, so
    the wideband three are the speakers; each of them hears the other two, the PCMU phone hears all three."""
    specs = {"alice": AMRWB, "bob": OPUS, "carol": G722, "dave": replace(PCMU, amplitude=0.08)}
    heard = run_conference(server, tmp_path, specs)
    wide = [n for n, s in specs.items() if s is not specs["dave"]]
    for name in wide:
        others = [specs[n].tone for n in wide if n != name]
        assert_hears(
            heard[name], present=others, absent=[specs[name].tone], who=f"{name} ({specs[name].codecs})"
        )
    assert_hears(
        heard["dave"], present=[specs[n].tone for n in wide], absent=[specs["dave"].tone], who="dave"
    )


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("server", ["in-process-mixer"], indirect=True)  # the 4-phone test crosses the wire
def test_a_6khz_tone_reaches_the_wideband_phone_and_not_the_pcmu_one_nor_aliased(
    server: ServerProcess, tmp_path: Path
) -> None:
    """G.722, Opus and PCMU phones hear each other's tones, none its own; the G.722 phone (16 kHz source)
    sends 6 kHz, above the narrowband's 4 kHz: the Opus phone hears it, the PCMU phone does not, and not
    folded to 2 kHz either (the mixer's downsampling filters it out)."""
    six = replace(G722, tone=6000.0, rate=16000)
    specs = {"alice": six, "bob": OPUS, "carol": PCMU}
    heard = run_conference(server, tmp_path, specs, extra_freqs=(2000.0,))
    assert_hears(heard["bob"], present=[6000.0, 970.0], absent=[620.0, 2000.0], who="bob (opus)")
    assert heard["carol"].rate == 8000, heard["carol"].describe()
    assert_hears(heard["carol"], present=[620.0], absent=[2000.0, 970.0], who="carol (pcmu)")
    assert_hears(heard["alice"], present=[620.0, 970.0], absent=[6000.0], who="alice (g722)")


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_dial_out_to_a_g722_phone(tmp_path: Path) -> None:
    """The operator dials a G.722-only phone into a PCMU phone's conference: our offer lists AMR-WB, Opus,
    G.722, PCMU and PCMA, the phone answers G.722, the mixer leg takes it; they hear each other and the
    operator view names each one's codec."""
    from test_operator_api import BASE, Api

    require_peer("baresip")
    require_module(G722.module)
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(100)
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nfocus_host = "127.0.0.1"\n')
    http_port = free_tcp_port()
    srv.start("--config", str(cfg), "--http", f"127.0.0.1:{http_port}", auth="none")
    pki = srv.data_dir / "pki"
    specs = {"alice": PCMU, "bob": G722}
    phones = [
        BaresipPhone(
            name,
            tmp_path / name,
            tone_wav=write_tone_wav(tmp_path / f"{name}.wav", s.tone, seconds=120),
            ca_pem=pki / "ca.pem",
            cert_combined_pem=pki / "server-combined.pem",
            codecs=s.codecs,
            extra_config=f"module\t{s.module}" if s.module != "g711.so" else "",
        )
        for name, s in specs.items()
    ]
    alice, bob = phones
    try:
        with explained(srv, phones):
            for p in phones:
                p.start()
            api = Api(http_port, srv.data_dir)
            alice.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            t_alice = established(alice)
            (conf,) = api.ok("GET", BASE)["conferences"]
            cid = conf["id"]
            target = f"sip:bob@127.0.0.1:{bob.tls_port};transport=tls"
            api.ok("POST", f"{BASE}/{cid}/participants", {"uri": target}, status=202)
            t_all = max(t_alice, established(bob))
            time.sleep(max(0.0, t_all + 7.0 - time.monotonic()))
            view = api.ok("GET", f"{BASE}/{cid}")["participants"]
            assert [(p["uri"].split("@")[0], p["codec"]) for p in view] == [
                ("sip:alice", "PCMU"),
                ("sip:bob", "G722"),
            ], view
            t_hangup = time.monotonic()
            window = t_hangup - t_all - 2.5
            bob.hangup()
            bob.wait_event("CALL_CLOSED", 5)
            alice.hangup()
            alice.wait_event("CALL_CLOSED", 5)
            for p in phones:
                p.stop()
            freqs = sorted(s.tone for s in specs.values())
            for p in phones:
                (dec,) = p.dec_wavs()
                closed_at = float(p.wait_event("CALL_CLOSED", 0)["_t"])
                lv = tone_levels(
                    dec, freqs, last_seconds=window, drop_last_seconds=closed_at - t_hangup + 0.5
                )
                own = specs[p.name].tone
                assert_hears(lv, present=[f for f in freqs if f != own], absent=[own], who=p.name)
            assert "Traceback" not in srv.log(), srv.log()[-3000:]
    finally:
        for p in phones:
            p.stop()
        srv.stop()
