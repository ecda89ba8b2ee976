"""``mixers = 2``, end to end: the real server starts two ``imsconf mixer`` processes and places each
conference on one of them by load; one is killed (SIGKILL) mid-call: the participants of its conference
are moved to the other by re-INVITEs with new keys and hear each other again within 10 s, the other
conference is not touched, and the server starts the killed mixer again.  The participants are the
project's SRTP test UAs (``tests/uas``, pylibsrtp), as in ``test_mixer_recovery.py``."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import ServerProcess, free_port_pair
from test_mixer_recovery import HEARD_DB, RECOVERY_LIMIT, TONES

from uas import Call, UserAgent, tone_present

FACTORY = "sip:conference-factory@localhost"


def wait_for(cond, timeout: float, what: str, srv: ServerProcess) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n--- server ---\n{srv.log()[-6000:]}")


def hears(call: Call, others: list[str], window: float = 0.5, after: float = 0.0) -> bool:
    """*call* received the tones of *others* in the last *window* seconds, all of it after *after*."""
    start = time.monotonic() - window
    if start < after:
        return False
    audio = call.media.audio(since=start)
    if len(audio) < 8000 * window * 0.6:
        return False
    return all(tone_present(audio, TONES[other]) >= HEARD_DB for other in others)


def pair_hears(calls: dict[str, Call], after: float = 0.0) -> bool:
    return all(hears(call, [o for o in calls if o != user], after=after) for user, call in calls.items())


def placed(log: str) -> list[tuple[str, str]]:
    return re.findall(r"event=conference_placed conf=(\S+) mixer=(\S+)", log)


def pids(log: str, mixer: str) -> list[int]:
    return [int(p) for p in re.findall(rf"event=mixer_started mixer={mixer} pid=(\d+)", log)]


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_two_mixers_carry_two_conferences_and_one_killed_is_taken_over(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(200)
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nmixers = 2\nbfcp_listen = []\n')
    srv.start("--config", str(cfg), auth="none", timeout=40.0)
    ca = srv.data_dir / "pki" / "ca.pem"
    agents: list[UserAgent] = []

    def dial(user: str, target: str) -> Call:
        ua = UserAgent(user, transport="tls", ca_file=str(ca), tls_server_name="localhost",
                       amplitude=0.25, tone_hz=TONES[user], srtp=True, srtp_required=True,
                       rtcp_interval=0.5).start()  # fmt: skip
        agents.append(ua)
        call = ua.call(target, proxy=("127.0.0.1", srv.tls_port))
        assert call.state == "confirmed", call.final_response
        return call

    try:
        # the server is ready with one mixer; placement by headroom needs both to be there
        wait_for(lambda: srv.log().count("event=mixer_connected") >= 2, 15, "both mixers connected", srv)
        first: dict[str, Call] = {"alice": dial("alice", FACTORY)}
        target = first["alice"].remote_target
        assert target is not None
        first["bob"] = dial("bob", target)
        wait_for(lambda: pair_hears(first), 10, "alice and bob to hear each other", srv)
        second: dict[str, Call] = {"carol": dial("carol", FACTORY)}
        target = second["carol"].remote_target
        assert target is not None
        second["dave"] = dial("dave", target)
        wait_for(lambda: pair_hears(second), 10, "carol and dave to hear each other", srv)
        places = placed(srv.log())
        assert len(places) == 2 and places[0][1] != places[1][1], places  # one conference per mixer
        victim, survivor = places[0][1], places[1][1]
        # the mixers' own logs: each holds one focus connection and media of its own slice
        logs = {m: (srv.data_dir / "mixers" / f"{m}.log").read_text() for m in (victim, survivor)}
        assert all("event=focus_connected" in text for text in logs.values()), logs

        keys = {u: (c.rx_crypto.key_salt if c.rx_crypto else b"") for u, c in first.items()}
        offers = {u: len(c.offers_received) for u, c in {**first, **second}.items()}
        (pid,) = pids(srv.log(), victim)
        t_kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        t_moved = wait_for(
            lambda: all(len(c.offers_received) > offers[u] for u, c in first.items()),
            RECOVERY_LIMIT,
            "alice and bob moved by re-INVITEs",
            srv,
        )
        t_ok = wait_for(
            lambda: pair_hears(first, after=t_moved),
            RECOVERY_LIMIT - (t_moved - t_kill),
            "alice and bob to hear each other on the other mixer",
            srv,
        )
        print(f"re-INVITEs {t_moved - t_kill:.2f} s, heard again {t_ok - t_kill:.2f} s after the kill")
        for user, call in first.items():  # moved by a re-INVITE: new key, same call
            assert call.state == "confirmed", user
            assert len(call.offers_received) > offers[user], user
            assert call.rx_crypto is not None and call.rx_crypto.key_salt != keys[user], user
        for user, call in second.items():  # the other conference was not touched
            assert call.state == "confirmed" and len(call.offers_received) == offers[user], user
        assert pair_hears(second)
        # the runtime starts the killed mixer again and the pool connects to it
        wait_for(lambda: len(pids(srv.log(), victim)) == 2, 15, "the killed mixer to be started again", srv)
        log = srv.log()
        assert re.search(rf"event=mixer_exited mixer={victim} pid={pid} status=-9", log), log[-3000:]
        assert re.search(rf"event=pool_member_lost mixer={victim} conferences=1 legs=2 survivors=true", log)
        wait_for(lambda: srv.log().count("event=mixer_connected") >= 3, 15, "the new mixer connected", srv)
        assert "event=media_recovered legs=2" in srv.log()
        assert "participant_left" not in srv.log()
        assert "Traceback" not in srv.log()
    finally:
        for ua in agents:
            ua.close()
        srv.stop()
    # stopped with the server: no child left
    for mixer in ("mixer-0", "mixer-1"):
        for child in pids(srv.log(), mixer):
            assert (
                not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()
            )
