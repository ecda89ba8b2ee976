"""The separate mixer (``imsconf mixer``) goes away and comes back, end to end: the real server, a real mixer
process, and the project's SRTP test UAs (``tests/uas``, pylibsrtp: they take a re-INVITE with new keys).

* three participants hear each other; the mixer is killed (SIGKILL) mid-conference and started again at
  the same address: within 10 s every participant hears the others again, each moved by a re-INVITE of the
  focus with a new key and new ports, without redialling; a fourth joins afterwards; the log names the
  loss and the recovery;
* the server starts before its mixer: calls get 503 with Retry-After until the mixer is up, then work;
* ``imsconf mixer`` stops on SIGTERM with exit status 0 and no traceback, closing its legs.

:func:`run_recovery` is also the measurement of ``bench/mixer_recovery.py``.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import MixerProcess, ServerProcess, free_port_pair, free_tcp_port

from uas import Call, UserAgent, tone_present

TONES = {"alice": 440.0, "bob": 620.0, "carol": 970.0, "dave": 1300.0}
HEARD_DB = -32.0  # a participant's tone in a 0.5 s window of what another one receives
RECOVERY_LIMIT = 10.0


@dataclass
class Setup:
    server: ServerProcess
    mixer: MixerProcess
    config: Path

    @property
    def ca(self) -> Path:
        return self.server.data_dir / "pki" / "ca.pem"


def setup(tmp: Path, *, start_mixer: bool = True, extra: str = "") -> Setup:
    srv = ServerProcess(tmp / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(100)
    listen = f"127.0.0.1:{free_tcp_port()}"
    cfg = tmp / "imsconf.toml"
    cfg.write_text(
        f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nmixer = "{listen}"\nbfcp_listen = []\n'
        + extra
    )
    mixer = MixerProcess(srv.data_dir, listen, cfg)
    if start_mixer:
        mixer.start()
    srv.start("--config", str(cfg), auth="none")
    return Setup(srv, mixer, cfg)


def teardown(s: Setup) -> None:
    s.server.stop()
    s.mixer.stop()


def wait_for(cond: Callable[[], bool], timeout: float, what: str, s: Setup | None = None) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(0.05)
    tail = (
        ""
        if s is None
        else "\n--- server ---\n" + s.server.log()[-5000:] + "\n--- mixer ---\n" + s.mixer.log()
    )
    raise AssertionError(f"timed out waiting for {what}{tail}")


def agent(s: Setup, user: str, amplitude: float = 0.25) -> UserAgent:
    ua = UserAgent(user, transport="tls", ca_file=str(s.ca), tls_server_name="localhost", amplitude=amplitude,
                   tone_hz=TONES[user], srtp=True, srtp_required=True, rtcp_interval=0.5)  # fmt: skip
    return ua.start()


def dial(s: Setup, ua: UserAgent, target: str) -> Call:
    call = ua.call(target, proxy=("127.0.0.1", s.server.tls_port))
    assert call.state == "confirmed", call.final_response
    return call


def hears(call: Call, others: list[str], window: float = 0.5) -> bool:
    """The call received, in the last *window* seconds, the tone of each of *others*."""
    audio = call.media.audio(since=time.monotonic() - window)
    if len(audio) < 8000 * window * 0.6:
        return False
    return all(tone_present(audio, TONES[other]) >= HEARD_DB for other in others)


def hears_others(calls: dict[str, Call]) -> bool:
    """Every participant hears every other one."""
    return all(hears(call, [o for o in calls if o != user]) for user, call in calls.items())


@dataclass
class Recovery:
    seconds: float  # SIGKILL of the mixer -> every participant hears every other one again
    restart: float  # of that, the mixer process's own restart (SIGKILL -> listening again)
    server_log: str


def run_recovery(
    tmp: Path, *, fourth: bool = True, downlink: str = "per-participant", probe: bool = False
) -> Recovery:
    """Three participants, the mixer killed and restarted: the recovery time (see :class:`Recovery`).
    *probe*: a call during the outage, which must get 503 with Retry-After (it delays the restart)."""
    s = setup(tmp, extra=f'downlink = "{downlink}"\n')
    agents: list[UserAgent] = []
    try:
        calls: dict[str, Call] = {}
        for user in ("alice", "bob", "carol"):
            ua = agent(s, user)
            agents.append(ua)
            target = "sip:conference-factory@localhost" if not calls else calls["alice"].remote_target
            assert target is not None
            calls[user] = dial(s, ua, target)
        wait_for(lambda: hears_others(calls), 10, "the three to hear each other", s)
        keys = {u: (c.rx_crypto.key_salt if c.rx_crypto else b"") for u, c in calls.items()}
        offers = {u: len(c.offers_received) for u, c in calls.items()}

        assert s.mixer.proc is not None
        t_kill = time.monotonic()
        s.mixer.proc.send_signal(signal.SIGKILL)
        s.mixer.proc.wait()
        wait_for(lambda: "event=mixer_lost" in s.server.log(), 5, "the loss in the log", s)
        if probe:
            late = agent(s, "dave")
            agents.append(late)
            target = calls["alice"].remote_target
            assert target is not None
            refused = late.call(target, proxy=("127.0.0.1", s.server.tls_port))
            resp = refused.final_response
            assert resp is not None and resp.status == 503 and resp.get("Retry-After"), resp
        (s.mixer.data_dir / "mixer.log").rename(s.mixer.data_dir / "mixer-killed.log")
        s.mixer.start()
        restart = time.monotonic() - t_kill
        t_ok = wait_for(lambda: hears_others(calls), RECOVERY_LIMIT, "everyone to hear the others again", s)
        took = t_ok - t_kill

        for user, call in calls.items():  # moved by a re-INVITE: new key, new ports, same call
            assert call.state == "confirmed", user
            assert len(call.offers_received) > offers[user], user
            assert call.rx_crypto is not None and call.rx_crypto.key_salt != keys[user], user
            # the restarted mixer binds the same range again, so the ports may well be the same ones
            assert call.remote_sdp is not None and call.remote_sdp.port > 0, user
            assert call.offers_received[-1].method == "INVITE", user
        if fourth:  # louder: the mixer mixes the loudest three, and the others are heard already
            ua = agent(s, "dave", amplitude=0.5)
            agents.append(ua)
            target = calls["alice"].remote_target
            assert target is not None
            dave = dial(s, ua, target)  # (a new phone: the one refused during the outage redials too)
            wait_for(
                lambda: (
                    all(hears(c, ["dave"]) for c in calls.values())
                    and sum(hears(dave, [u]) for u in calls) >= 2
                ),
                10,
                "the fourth to hear and be heard",
                s,
            )
        log = s.server.log()
        assert "Traceback" not in log, log[-3000:]
        return Recovery(took, restart, log)
    finally:
        for ua in agents:
            ua.close()
        teardown(s)


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_mixer_restarted_takes_the_conference_back(tmp_path: Path) -> None:
    r = run_recovery(tmp_path, probe=True)
    assert r.seconds < RECOVERY_LIMIT, r
    print(f"recovery {r.seconds:.2f} s (mixer restart {r.restart:.2f} s)")
    log = r.server_log
    assert re.search(r"event=mixer_lost .*ready=false", log), log[-3000:]
    assert log.count("event=mixer_connected") >= 2
    assert log.count("event=media_moved") == 3
    assert "event=media_recovered legs=3" in log
    # nobody left; only the call refused during the outage shows (its join is undone: "offer refused")
    assert re.findall(r"event=participant_left .*reason=(.*)", log) == ["offer refused"], log[-3000:]


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_group_keyed_conference_gets_a_fresh_epoch_on_the_restarted_mixer(tmp_path: Path) -> None:
    r = run_recovery(tmp_path, fourth=False, downlink="group")
    assert r.seconds < RECOVERY_LIMIT, r
    print(f"recovery {r.seconds:.2f} s (group downlink)")
    log = r.server_log
    assert "event=media_recovered legs=3" in log
    after = log[log.index("event=media_recovering") :]
    assert re.search(r"event=group_rekey conf=\S+ epoch=1 ", after), after[-3000:]  # fresh, on the new mixer
    assert "participant_left" not in log


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_hung_mixer_is_lost_by_heartbeat_and_taken_back_when_it_resumes(tmp_path: Path) -> None:
    """SIGSTOP: the TCP connection stays, only the heartbeat can tell.  The focus gives up on it within the
    3 s timeout; once it resumes (SIGCONT) it sees its focus gone, drops those legs, and is connected again
    and given the legs anew."""
    s = setup(tmp_path)
    agents: list[UserAgent] = []
    try:
        calls: dict[str, Call] = {}
        for user in ("alice", "bob"):
            ua = agent(s, user)
            agents.append(ua)
            target = "sip:conference-factory@localhost" if not calls else calls["alice"].remote_target
            assert target is not None
            calls[user] = dial(s, ua, target)
        wait_for(lambda: hears_others(calls), 10, "the two to hear each other", s)
        assert s.mixer.proc is not None
        t_stop = time.monotonic()
        s.mixer.proc.send_signal(signal.SIGSTOP)
        try:
            t_lost = wait_for(lambda: "event=mixer_lost" in s.server.log(), 8, "the loss by heartbeat", s)
        finally:
            s.mixer.proc.send_signal(signal.SIGCONT)
        assert t_lost - t_stop < 4.5, t_lost - t_stop  # 3 s timeout + the log poll
        assert "no heartbeat" in s.server.log()
        wait_for(lambda: "event=media_recovered legs=2" in s.server.log(), 15, "the recovery", s)
        wait_for(lambda: hears_others(calls), 10, "the two to hear each other again", s)
        assert "Traceback" not in s.server.log() + s.mixer.log()
    finally:
        for a in agents:
            a.close()
        teardown(s)


@pytest.mark.peer
@pytest.mark.timeout(90)
def test_the_server_starts_before_its_mixer(tmp_path: Path) -> None:
    s = setup(tmp_path, start_mixer=False)
    agents: list[UserAgent] = []
    try:
        assert "event=mixer_waiting" in s.server.log()
        ua = agent(s, "alice")
        agents.append(ua)
        early = ua.call("sip:conference-factory@localhost", proxy=("127.0.0.1", s.server.tls_port))
        resp = early.final_response
        assert resp is not None and resp.status == 503, resp
        assert resp.get("Retry-After"), resp
        s.mixer.start()
        wait_for(lambda: "event=mixer_connected" in s.server.log(), 10, "the mixer connected", s)
        calls = {"alice": dial(s, ua, "sip:conference-factory@localhost")}
        target = calls["alice"].remote_target
        assert target is not None
        bob = agent(s, "bob")
        agents.append(bob)
        calls["bob"] = dial(s, bob, target)
        wait_for(lambda: hears_others(calls), 10, "the two to hear each other", s)
        assert "Traceback" not in s.server.log()
    finally:
        for a in agents:
            a.close()
        teardown(s)


@pytest.mark.peer
@pytest.mark.timeout(60)
def test_the_mixer_stops_on_sigterm_without_a_traceback(tmp_path: Path) -> None:
    s = setup(tmp_path)
    agents: list[UserAgent] = []
    try:
        ua = agent(s, "alice")
        agents.append(ua)
        dial(s, ua, "sip:conference-factory@localhost")
        proc = s.mixer.proc
        assert proc is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        log = s.mixer.log()
        assert "Traceback" not in log and "CancelledError" not in log, log
        assert "event=focus_disconnected" in log and "event=mixer_stopped" in log
        wait_for(lambda: "event=mixer_lost" in s.server.log(), 5, "the server to notice", s)
        proc.wait()
        s.mixer.proc = None
        # SIGINT too
        s.mixer.start()
        wait_for(lambda: s.server.log().count("event=mixer_connected") >= 2, 10, "reconnected", s)
        assert s.mixer.proc is not None
        s.mixer.proc.send_signal(signal.SIGINT)
        assert s.mixer.proc.wait(10) == 0
        assert "Traceback" not in s.mixer.log()
    finally:
        for a in agents:
            a.close()
        teardown(s)
