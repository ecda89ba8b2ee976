"""Group downlink keying end to end: the real server in ``group`` mode with rekey on join and on
leave, rekey-capable test UAs (pylibsrtp, ``tests/uas``) and real baresip 1.0.0 phones in one conference.

* ``speaker`` (a test UA) sends a 440 Hz tone; everyone else is silent, so they are listeners and get the
  common stream once they hold the group key.
* ``l1`` and ``l2`` (test UAs) are listeners from the start; they capture every SRTP packet they receive.
* two baresip phones join: they answer the key re-INVITE with 200 OK but keep their old key (baresip 1.0.0
  keeps its first SDES key), so their SRTCP reports never show the common stream: they are demoted to their
  own key and must hear the tone throughout.
* ``leaver`` joins, takes the group key, leaves: (a) nothing ``l1`` received after switching away from the
  leaver's epoch decrypts under any key the leaver ever held.
* ``joiner`` joins late: (b) nothing ``l1`` received before the join decrypts under any key it is given.
* (c) the listeners' received tone never has a gap over 60 ms across a rekey.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio import assert_hears, tone_levels, write_tone_wav
from baresip import BaresipPhone
from harness import ServerProcess, free_port_pair

from peers import require_peer
from uas import Call, UserAgent, tone_gap_ms, try_decrypt

TONE = 440.0
MAX_GAP_MS = 60.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    cfg = tmp_path / "imsconf.toml"
    # focus_host: baresip's resolver does not read /etc/hosts, the focus's Contact must be an address
    cfg.write_text(
        'downlink = "group"\nrekey = "both"\nbfcp_listen = []\nmedia_host = "127.0.0.1"\n'
        'focus_host = "127.0.0.1"\n'
    )
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    srv.start("--config", str(cfg), auth="none")
    try:
        yield srv
    finally:
        srv.stop()


def _keys(call: Call) -> list[bytes]:
    """Every downlink key the focus ever gave this call (initial answer and re-INVITE offers)."""
    out = [o.crypto.key_salt for o in call.offers_received if o.crypto is not None]
    rx = call.rx_crypto
    if rx is not None:
        out.append(rx.key_salt)
    return list(dict.fromkeys(out))


def _wait(cond: object, timeout: float, what: str, srv: ServerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    tail = "" if srv is None else "\n" + srv.log()[-6000:]
    raise AssertionError(f"timed out waiting for {what}{tail}")


def _switches(call: Call) -> list[float]:
    return [s.at for s in call.media.key_switches]


def _max_gap_around(call: Call, moments: list[float], since: float, half: float = 1.0) -> float:
    """Longest tone gap (ms) within ``half`` s of each moment, not before ``since``."""
    worst = 0.0
    for t in moments:
        tl = call.media.timeline(since=max(since, t - half), until=t + half)
        worst = max(worst, tone_gap_ms(tl, TONE, window_ms=10))
    return worst


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_group_rekey_join_leave_with_test_uas_and_baresip(server: ServerProcess, tmp_path: Path) -> None:
    require_peer("baresip")
    srv = server
    pki = srv.data_dir / "pki"
    ca, combined = pki / "ca.pem", pki / "server-combined.pem"
    proxy = ("127.0.0.1", srv.tls_port)
    agents: list[UserAgent] = []
    phones: list[BaresipPhone] = []

    def ua(user: str, amplitude: float) -> UserAgent:
        agent = UserAgent(user, transport="tls", ca_file=str(ca), tls_server_name="localhost",
                          tone_hz=TONE, amplitude=amplitude, srtp=True, srtp_required=True,
                          rtcp_interval=0.5).start()  # fmt: skip
        agents.append(agent)
        return agent

    def call(agent: UserAgent, target: str) -> Call:
        c = agent.call(target, proxy=proxy)
        assert c.state == "confirmed", c.final_response
        return c

    try:
        speaker = call(ua("speaker", 0.25), "sip:conference-factory@localhost")
        conf_uri = speaker.remote_target
        assert conf_uri is not None
        conf_user = re.match(r"sips?:([^@]+)@", conf_uri)
        assert conf_user is not None
        l1, l2 = call(ua("l1", 0.0), conf_uri), call(ua("l2", 0.0), conf_uri)
        time.sleep(1.0)
        t_listen = time.monotonic()  # both listeners hear the tone from here on
        silent = write_tone_wav(tmp_path / "silence.wav", TONE, seconds=120, amplitude=0.0)
        for name in ("b1", "b2"):
            p = BaresipPhone(name, tmp_path / name, tone_wav=silent, ca_pem=ca, cert_combined_pem=combined)
            phones.append(p.start())
            p.dial(f"sip:{conf_user.group(1)}@127.0.0.1:{srv.tls_port}")
            p.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
        # the listeners end up on the group key; baresip is demoted (its reports never show the epoch)
        _wait(lambda: srv.log().count("demoted to its own key") >= 2 and "scope=group" in srv.log(), 25,
              "baresip demotions and a listener on the group key", srv)  # fmt: skip

        # (a) a leaver
        leaver = call(ua("leaver", 0.0), conf_uri)
        n1 = len(_switches(l1))
        _wait(
            lambda: len(leaver.media.key_switches) >= 1 and len(_switches(l1)) > n1, 10, "leaver on the key"
        )
        time.sleep(0.5)
        leaver_keys = _keys(leaver)
        n1, n2 = len(_switches(l1)), len(_switches(l2))
        t_bye = time.monotonic()
        leaver.bye()
        _wait(
            lambda: len(_switches(l1)) > n1 and len(_switches(l2)) > n2, 10, "listeners leave the old epoch"
        )
        t_l1_switched = _switches(l1)[n1]
        time.sleep(1.5)

        # (b) a joiner
        t_join = time.monotonic()
        n1 = len(_switches(l1))
        joiner = call(ua("joiner", 0.0), conf_uri)
        _wait(
            lambda: len(joiner.media.key_switches) >= 1 and len(_switches(l1)) > n1, 10, "joiner on the key"
        )
        time.sleep(1.0)

        # participant-initiated rekey: the speaker offers a new send key; its tone must not break
        t_own = time.monotonic()
        resp = speaker.reinvite(new_key=True)
        assert resp.status == 200, resp
        time.sleep(1.5)
        t_end = time.monotonic()

        captured = list(l1.media.captured)
        after_leave = [p for t, p in captured if t > t_l1_switched]
        assert len(after_leave) > 100
        for key in leaver_keys:
            assert try_decrypt(after_leave, key) == 0, "the leaver decrypts packets sent after it left"
        assert try_decrypt(after_leave, _keys(l1)[-1]) > 0 or any(
            try_decrypt(after_leave, k) > 0 for k in _keys(l1)
        )
        before_join = [p for t, p in captured if t < t_join]
        assert len(before_join) > 100
        joiner_keys = _keys(joiner)
        assert joiner_keys
        for key in joiner_keys:
            assert try_decrypt(before_join, key) == 0, "the joiner decrypts packets captured before it joined"

        # (c) no gap over 60 ms across any rekey, for every remaining listener
        for c in (l1, l2):
            moments = [t for t in _switches(c) if t_listen < t < t_end - 1.0]
            assert len(moments) >= 4, (c, _switches(c))  # 2 baresip joins, a join, a leave, a join
            gap = _max_gap_around(c, [*moments, t_own + 0.1], t_listen)
            assert gap <= MAX_GAP_MS, f"{c}: {gap:.0f} ms gap around a rekey"
        window = t_l1_switched - t_bye
        assert window < 1.0, f"BYE to switch took {window * 1000:.0f} ms"

        # (d) baresip hears the tone throughout on its own key
        for p in phones:
            p.hangup()
        time.sleep(0.3)
        for p in phones:
            p.stop()
            decs = p.dec_wavs()
            assert decs, f"{p.name}: no recording"
            lv = tone_levels(decs[0], [TONE, 1000.0], skip_seconds=3.0)
            assert_hears(lv, present=[TONE], who=p.name)
            x = _wav_gap(decs[0])
            assert x <= 200.0, f"{p.name}: {x:.0f} ms without the tone"
        log = srv.log()
        assert "event=key_use_failed" in log or "no proof" in log, log[-3000:]
        assert log.count("event=group_rekey") >= 6
    finally:
        for p in phones:
            p.stop()
        for a in agents:
            a.close()


def _wav_gap(path: Path) -> float:
    """Longest run (ms) without the tone in a baresip recording, after the first 3 s."""
    from audio import read_wav

    x, rate = read_wav(path)
    x = x[3 * rate : max(3 * rate, len(x) - rate // 2)]
    if rate != 8000:
        x = x[:: rate // 8000]
    samples = (np.asarray(x) * 32767).astype(np.int16)
    return tone_gap_ms(samples, TONE, window_ms=20)
