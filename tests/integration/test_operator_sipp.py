"""Live conference control in a running server: FocusAdmin (the server's ``admin``) drives the focus while
SIPp phones are in the conference.  Two participants join (the owner and a member); the operator mutes the
member, kicks it (its SIPp gets the BYE and answers it), locks the conference, and a third INVITE gets
``403 Conference locked``.

The server runs in this process (the operator's commands must run on its event loop) with the plain-RTP
relaxations SIPp needs (see test_conference_sipp.py); SIPp runs as child processes of the loop.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from baresip import free_udp_range
from harness import SCENARIOS, free_port_pair, sipp_errors

from imsconf.app.config import Listen, Settings
from imsconf.app.server import start_server
from imsconf.focus.admin import OperatorEvent
from imsconf.media.engine import MediaEngine
from peers import require_peer

pytestmark = [pytest.mark.peer, pytest.mark.timeout(90)]


async def _sipp(scenario: str, port: int, workdir: Path, *extra: str) -> asyncio.subprocess.Process:
    sipp = require_peer("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        sipp, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-t", "u1", "-i", "127.0.0.1",
        "-p", "0", "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err", *extra,
        cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _until(cond: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_operator_mutes_kicks_and_locks_in_a_running_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_peer("sipp")
    mixes: list[tuple[str, bool, bool]] = []

    def set_leg_mix(self: MediaEngine, leg_id: str, *, muted: bool, deaf: bool) -> None:
        mixes.append((leg_id, muted, deaf))  # what the focus asked of the in-process mixer

    # the mixer's own mute is the media side's (tests/media); here: that the focus asks for it
    monkeypatch.setattr(MediaEngine, "set_leg_mix", set_leg_mix, raising=False)
    port = free_port_pair()
    lo, hi = free_udp_range(40)
    settings = Settings(
        domain="localhost",
        listen=(Listen("udp", "127.0.0.1", port),),
        data_dir=tmp_path / "var",
        auth="none",
        allow_plain_rtp=True,
        allow_sdes_over_udp=True,
        rtp_port_range=(lo, hi),
        bfcp_listen=(),
    )

    async def scenario() -> None:
        server = await start_server(settings)
        admin = server.admin
        assert admin is not None
        events: list[OperatorEvent] = []
        admin.watch(events.append)
        conf_file = tmp_path / "conf.txt"
        owner = await _sipp("conf_create.xml", port, tmp_path / "owner",
                            "-key", "conf_file", str(conf_file), "-d", "8000")  # fmt: skip
        try:
            await _until(lambda: conf_file.exists() and conf_file.read_text().strip(), "the conference")
            conf_user = conf_file.read_text().strip()
            member = await _sipp("conf_join_closed.xml", port, tmp_path / "member", "-key", "conf", conf_user)

            def member_joined() -> bool:
                views = admin.conferences()
                return len(views) == 1 and len(views[0].participants) == 2

            await _until(member_joined, "the member's join")
            (view,) = admin.conferences()
            assert view.uri == f"sip:{conf_user}@localhost" and not view.locked
            owner_view, member_view = view.participants
            assert owner_view.role == "owner" and member_view.uri.startswith("sip:member")
            assert (
                member_view.transport == "udp" and member_view.codec == "PCMU" and member_view.key == "none"
            )
            # mute: the mixer is told, the view says so
            muted = admin.set_muted(view.id, member_view.id, True)
            assert muted.muted and mixes == [(f"{view.id}.{member_view.id}", True, False)]
            # kick: the member's SIPp gets the BYE (its scenario ends with the 200 to it)
            admin.kick(view.id, member_view.id)
            assert await asyncio.wait_for(member.wait(), 15) == 0, sipp_errors(tmp_path / "member")
            await _until(lambda: len(admin.conference(view.id).participants) == 1, "the member's leave")
            # lock: a third INVITE gets 403
            assert admin.set_locked(view.id, True).locked
            late = await _sipp("conf_locked.xml", port, tmp_path / "late", "-key", "conf", conf_user)
            assert await asyncio.wait_for(late.wait(), 15) == 0, sipp_errors(tmp_path / "late")
            assert len(admin.conference(view.id).participants) == 1
            # the owner leaves at the end of its pause: the conference ends
            assert await asyncio.wait_for(owner.wait(), 20) == 0, sipp_errors(tmp_path / "owner")
            await _until(lambda: admin.conferences() == (), "the conference's end")
            kinds = [e.kind for e in events]
            for kind in ("participant-joined", "participant-muted", "participant-left", "conference-locked",
                         "conference-ended"):  # fmt: skip
                assert kind in kinds, kinds
        finally:
            if owner.returncode is None:
                owner.kill()
                await owner.wait()
            await server.close()

    asyncio.run(scenario())
