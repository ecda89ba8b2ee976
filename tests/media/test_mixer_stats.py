"""MediaControl.mixer_stats(): zeros without a mixer; the in-process engine's figures summed over its legs."""

from __future__ import annotations

import random

from media_peer import Peer, deliver, make_keys

from imsconf.media.control import LocalMediaControl, NullMediaControl, NullPortAllocator
from imsconf.media.engine import MediaEngine
from imsconf.media.events import TICK_SECONDS_BOUNDS


def test_null_control_reports_zeros() -> None:
    st = NullMediaControl().mixer_stats()
    assert st.ticks == st.legs == st.rtp_received == st.srtp_auth_failures == 0
    assert st.tick_seconds_buckets == (0,) * (len(TICK_SECONDS_BOUNDS) + 1)


def test_local_control_sums_its_legs() -> None:
    ctl = LocalMediaControl(MediaEngine(rng=random.Random(3)), NullPortAllocator("192.0.2.10", 40000))
    ctl.allocate_leg("c1", "a", rtcp_mux=True)
    tx, rx = make_keys(), make_keys()
    ctl.configure_leg(
        "a", remote_rtp=("192.0.2.1", 5000), remote_rtcp=None, codec_pt=0, codec_name="PCMU", dtmf_pt=101,
        tx_keys=tx, rx_keys=rx,
    )  # fmt: skip
    peer = Peer(440.0, send_keys=rx, recv_keys=tx)
    deliver(ctl.engine, 40000, peer.next_packet(), ("192.0.2.1", 5000), 0.0)
    deliver(ctl.engine, 40000, b"\x80" + bytes(40), ("192.0.2.1", 5000), 0.01)  # not authentic
    ctl.engine.tick(0.02)
    st = ctl.mixer_stats()
    assert (st.legs, st.conferences, st.ticks) == (1, 1, 1)
    assert st.rtp_received == 1 and st.srtp_auth_failures + st.srtp_replays >= 1
    assert st.rtp_sent == ctl.leg_stats("a").sent
