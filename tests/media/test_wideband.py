"""The 16 kHz mix: a conference with a wideband (L16/16000) leg and G.711 legs; resampling without
aliasing; the codec's loss concealment and corrupt frames; one encode per listener group; telephone-events
at the codec's clock."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsconf.media.codec_port import L16, CodecError, builtin_codec
from imsconf.media.dtmf import TelephoneEvent
from imsconf.media.engine import DtmfReceived, LegConfig, MediaEngine, MediaEngineError
from imsconf.media.g711 import ulaw_decode, ulaw_encode
from imsconf.media.resample import DOWN_HISTORY, UP_HISTORY, downsample2, upsample2

T = 0.020
HDR = struct.Struct("!BBHII")


def amp(x: np.ndarray, freq: float, rate: int) -> float:
    """Normalised amplitude of ``freq`` in ``x`` (about the amplitude of a pure tone)."""
    v = x.astype(np.float64)
    k = np.exp(-2j * np.pi * freq * np.arange(len(v)) / rate)
    return float(2 * abs(np.dot(v, k)) / len(v))


def tone(freq: float, rate: int, n: int, start: int, a: float = 8000.0) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (a * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Phone:
    """A plain-RTP phone on PCMU (8 kHz) or L16 (16 kHz) that sends a tone and keeps what it hears."""

    def __init__(self, name: str, port: int, wide: bool, freq: float | None) -> None:
        self.name = name
        self.port = port
        self.addr = ("192.0.2.7", port + 10000)
        self.wide = wide
        self.freq = freq
        self.rate = 16000 if wide else 8000
        self.pt = 96 if wide else 0
        self.seq = 0
        self.pos = 0
        self.heard: list[np.ndarray] = []
        self.timestamps: list[int] = []

    @property
    def config(self) -> LegConfig:
        if self.wide:
            return LegConfig(self.addr, None, 96, "L16", 101, codec_clock=16000)
        return LegConfig(self.addr, None, 0, "PCMU", 101)

    def packet(self) -> bytes:
        n = self.rate // 50
        pcm = tone(self.freq or 0.0, self.rate, n, self.pos) if self.freq else np.zeros(n, np.int16)
        payload = pcm.astype(">i2").tobytes() if self.wide else ulaw_encode(pcm)
        data = HDR.pack(0x80, self.pt, self.seq & 0xFFFF, self.pos, 0x1000 + self.port) + payload
        self.seq += 1
        self.pos += n
        return data

    def receive(self, data: bytes) -> None:
        _b0, b1, _seq, ts, _ssrc = HDR.unpack_from(data)
        assert b1 & 0x7F == self.pt
        payload = data[12:]
        self.timestamps.append(ts)
        if self.wide:
            assert len(payload) == 640
            self.heard.append(np.frombuffer(payload, dtype=">i2").astype(np.int16))
        else:
            assert len(payload) == 160
            self.heard.append(ulaw_decode(payload))

    def last(self, frames: int = 25) -> np.ndarray:
        return np.concatenate(self.heard[-frames:])


class Room:
    def __init__(self, phones: list[Phone], conference: str = "c") -> None:
        self.engine = MediaEngine(rng=random.Random(3), allow_plain_rtp=True)
        self.phones = {p.port: p for p in phones}
        self.now = 0.0
        for p in phones:
            self.engine.add_leg(p.name, conference, p.port, p.port, True)
            self.engine.configure_leg(p.name, p.config, None, None, 0.0)

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            batch = [(p.port, p.packet(), p.addr) for p in self.phones.values() if p.freq is not None]
            self.engine.receive_batch(self.now, batch)
            for port, data, _dst in self.engine.tick(self.now):
                if not 192 <= data[1] <= 223:
                    self.phones[port].receive(data)
            self.now += T


def test_6khz_from_a_wideband_leg_reaches_wideband_not_the_pcmu_leg_nor_aliased() -> None:
    a = Phone("a", 20000, True, 6000.0)
    b = Phone("b", 20002, True, None)
    c = Phone("c", 20004, False, None)
    room = Room([a, b, c])
    room.run(40)
    assert amp(b.last(), 6000.0, 16000) > 4000  # through the 16 kHz mix unchanged
    heard_c = c.last()
    assert amp(heard_c, 2000.0, 8000) < 20  # 8000 - 6000: would be the alias without a low-pass
    assert np.abs(heard_c.astype(np.int32)).mean() < 20  # nothing else either (PCMU's quantisation)


def test_1khz_from_the_pcmu_leg_reaches_the_wideband_leg_at_1khz() -> None:
    a = Phone("a", 20000, True, None)
    c = Phone("c", 20004, False, 1000.0)
    room = Room([a, c])
    room.run(40)
    heard = a.last()
    assert amp(heard, 1000.0, 16000) > 6000
    assert amp(heard, 7000.0, 16000) < 20  # the upsampling image (8000 - 1000) is filtered out
    assert amp(heard, 500.0, 16000) < 50  # not at half or double the frequency
    assert amp(heard, 2000.0, 16000) < 50


def test_speakers_get_their_n_minus_1_and_the_listeners_one_shared_frame() -> None:
    a = Phone("a", 20000, True, 3000.0)
    c = Phone("c", 20004, False, 700.0)
    d = Phone("d", 20006, True, None)
    e = Phone("e", 20008, True, None)
    room = Room([a, c, d, e])
    room.run(40)
    assert amp(a.last(), 3000.0, 16000) < 30 and amp(a.last(), 700.0, 16000) > 5000
    assert amp(c.last(), 700.0, 8000) < 60 and amp(c.last(), 3000.0, 8000) > 5000
    assert all(np.array_equal(x, y) for x, y in zip(d.heard[-10:], e.heard[-10:], strict=True))
    assert amp(d.last(), 3000.0, 16000) > 5000 and amp(d.last(), 700.0, 16000) > 5000


def test_one_encode_per_listener_group() -> None:
    encodes: list[int] = []

    class Counting(L16):
        def encode(self, pcm: np.ndarray) -> bytes:
            encodes.append(1)
            return super().encode(pcm)

    eng = MediaEngine(allow_plain_rtp=True, codecs=lambda name, clock, params: Counting())
    for i in range(10):
        eng.add_leg(f"l{i}", "c", 21000 + 2 * i, 21000 + 2 * i, True)
        eng.configure_leg(
            f"l{i}",
            LegConfig(("192.0.2.9", 5000 + 2 * i), None, 96, "L16", None, codec_clock=16000),
            None,
            None,
        )
    eng.tick(0.0)
    assert len(encodes) == 1  # nobody speaks: one frame for all ten listeners
    encodes.clear()
    eng.table.wide_shared_encode = False
    eng.tick(0.02)
    assert len(encodes) == 10


def test_timestamps_advance_at_the_codec_clock() -> None:
    a = Phone("a", 20000, True, None)
    c = Phone("c", 20004, False, None)
    room = Room([a, c])
    room.run(5)
    assert {(y - x) & 0xFFFFFFFF for x, y in zip(a.timestamps, a.timestamps[1:], strict=False)} == {320}
    assert {(y - x) & 0xFFFFFFFF for x, y in zip(c.timestamps, c.timestamps[1:], strict=False)} == {160}


def test_loss_is_concealed_by_the_codec_and_corrupt_frames_are_counted() -> None:
    a = Phone("a", 20000, True, 1000.0)
    b = Phone("b", 20002, True, None)
    room = Room([a, b])
    room.run(10)
    a.seq += 1  # one frame lost
    a.pos += 320
    room.run(10)
    st = room.engine.leg_stats("a")
    assert st.concealed >= 1 and st.corrupt == 0
    bad = HDR.pack(0x80, 96, a.seq, a.pos, 0x1000 + a.port) + b"\x01\x02\x03"
    a.seq += 1
    a.pos += 320
    room.engine.receive_batch(room.now, [(a.port, bad, a.addr)])
    room.run(10)
    assert room.engine.leg_stats("a").corrupt == 1
    assert amp(b.last(5), 1000.0, 16000) > 6000


def test_g711_only_conferences_never_reach_the_wideband_part() -> None:
    c = Phone("c", 20004, False, 1000.0)
    d = Phone("d", 20006, False, None)
    room = Room([c, d])
    room.run(10)
    t = room.engine.table
    assert t.wide_order == [] and len(t.mixing) == 2
    assert amp(d.last(3), 1000.0, 8000) > 6000


def test_telephone_events_at_the_codec_clock() -> None:
    eng = MediaEngine(allow_plain_rtp=True)
    eng.add_leg("w", "c", 22000, 22000, True)
    addr = ("192.0.2.3", 7000)
    eng.configure_leg("w", LegConfig(addr, None, 96, "L16", 101, codec_clock=16000), None, None)
    # 100 ms at 16 kHz = 1600 timestamp units
    for i, (end, dur) in enumerate([(False, 800), (True, 1600)]):
        te = bytes(TelephoneEvent(5, end, 10, dur))
        eng.receive_batch(0.01 * i, [(22000, HDR.pack(0x80, 101, i, 4800, 0x77) + te, addr)])
    ends = [ev.event for ev in eng.events() if isinstance(ev, DtmfReceived) and ev.event.end]
    assert len(ends) == 1 and ends[0].digit == "5" and ends[0].duration_ms == 100


def test_codec_config_errors() -> None:
    with pytest.raises(ValueError):
        LegConfig(("192.0.2.1", 1), None, 96, "L16", None)  # L16 here is 16 kHz only
    with pytest.raises(ValueError):
        LegConfig(("192.0.2.1", 1), None, 0, "PCMU", None, codec_clock=16000)
    with pytest.raises(CodecError):
        builtin_codec("OPUS", 48000, {})
    eng = MediaEngine(allow_plain_rtp=True, codecs=builtin_codec)
    eng.add_leg("o", "c", 23000, 23000, True)
    with pytest.raises(MediaEngineError):  # this factory has no Opus
        eng.configure_leg(
            "o", LegConfig(("192.0.2.1", 1), None, 111, "opus", None, codec_clock=48000), None, None
        )


def test_resampler_round_trip_and_stop_band() -> None:
    n = 160
    x = np.stack([tone(f, 8000, 40 * n, 0) for f in (300.0, 1000.0, 3000.0)]).astype(np.float32)
    hist = np.zeros((3, UP_HISTORY), np.float32)
    up = np.concatenate([upsample2(x[:, i : i + n], hist) for i in range(0, x.shape[1], n)], axis=1)
    dh = np.zeros((3, DOWN_HISTORY), np.float32)
    down_parts = []
    for i in range(0, up.shape[1], 2 * n):
        frame = up[:, i : i + 2 * n]
        down_parts.append(downsample2(frame, dh))
        dh = np.concatenate((dh, frame), axis=1)[:, -DOWN_HISTORY:]
    down = np.concatenate(down_parts, axis=1)
    for row, f in zip(down, (300.0, 1000.0, 3000.0), strict=True):
        assert abs(amp(row[800:], f, 8000) - 8000) < 40  # flat pass band, frames joined without seams
    hi = np.stack([tone(6000.0, 16000, 40 * 2 * n, 0)]).astype(np.float32)
    dh1 = np.zeros((1, DOWN_HISTORY), np.float32)
    out = []
    for i in range(0, hi.shape[1], 2 * n):
        frame = hi[:, i : i + 2 * n]
        out.append(downsample2(frame, dh1))
        dh1 = np.concatenate((dh1, frame), axis=1)[:, -DOWN_HISTORY:]
    assert amp(np.concatenate(out, axis=1)[0, 400:], 2000.0, 8000) < 1  # > 80 dB below the 6 kHz tone


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=0, max_size=1400), min_size=1, max_size=12), st.integers(0, 127))
def test_arbitrary_payloads_on_a_wideband_leg_never_raise_out_of_the_tick(
    payloads: list[bytes], pt: int
) -> None:
    eng = MediaEngine(allow_plain_rtp=True)
    addr_w = ("192.0.2.5", 7100)
    eng.add_leg("w", "c", 24000, 24000, True)
    eng.configure_leg("w", LegConfig(addr_w, None, 96, "L16", 101, codec_clock=16000), None, None)
    eng.add_leg("n", "c", 24002, 24002, True)
    eng.configure_leg("n", LegConfig(("192.0.2.5", 7102), None, 0, "PCMU", 101), None, None)
    now = 0.0
    for i, p in enumerate(payloads):
        pkt = HDR.pack(0x80, pt if i % 2 else 96, i, 320 * i, 0x42) + p
        eng.receive_batch(now, [(24000, pkt, addr_w)])
        eng.tick(now)
        now += T
    for _ in range(8):
        eng.tick(now)
        now += T
    st_w = eng.leg_stats("w")
    assert st_w.corrupt <= len(payloads)


def test_the_16khz_mix_is_the_same_with_and_without_the_c_path(monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[list[np.ndarray]] = []
    for on in (True, False):
        monkeypatch.setenv("IMSCONF_FASTPATH", "1" if on else "0")
        a = Phone("a", 20000, True, 6000.0)
        c = Phone("c", 20004, False, 1000.0)
        d = Phone("d", 20006, False, None)
        room = Room([a, c, d])
        assert room.engine.c_path is on or not on
        room.run(20)
        heard.append(a.heard + c.heard + d.heard)
    assert len(heard[0]) == len(heard[1])
    assert all(np.array_equal(x, y) for x, y in zip(heard[0], heard[1], strict=True))


def test_codec_legs_on_connected_sockets_get_the_packets_the_sans_io_tick_gives() -> None:
    """The C send path of the 16 kHz mix (a leg with a connected socket) and the Python one (the
    sans-I/O tick) put the same packets on the wire: header, sequence, timestamp at the codec clock."""
    import socket

    from imsconf.media.egress import CollectingSink

    streams: list[dict[int, list[bytes]]] = []
    for direct in (False, True):
        phones = [
            Phone("a", 20000, True, 6000.0),
            Phone("b", 20002, True, 500.0),
            Phone("c", 20004, False, None),
        ]
        room = Room(phones)
        socks: dict[int, tuple[socket.socket, socket.socket]] = {}
        if direct:
            assert room.engine.c_path
            for p in phones:
                phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                phone.bind(("127.0.0.1", 0))
                phone.setblocking(False)
                ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                ours.connect(phone.getsockname())
                room.engine.set_send(p.port, ours.send, ours.fileno())
                socks[p.port] = (phone, ours)
        got: dict[int, list[bytes]] = {p.port: [] for p in phones}
        try:
            for _ in range(12):
                batch = [(p.port, p.packet(), p.addr) for p in phones if p.freq is not None]
                room.engine.receive_batch(room.now, batch)
                if direct:
                    sink = CollectingSink()
                    assert room.engine.tick_send(room.now, sink) == (0, 0)
                    for port, (phone, _ours) in socks.items():
                        while True:
                            try:
                                got[port].append(phone.recv(2048))
                            except BlockingIOError:
                                break
                else:
                    for port, data, _dst in room.engine.tick(room.now):
                        if not 192 <= data[1] <= 223:
                            got[port].append(data)
                room.now += T
        finally:
            for phone, ours in socks.values():
                phone.close()
                ours.close()
        streams.append(got)
    assert all(len(v) == 12 for v in streams[0].values())
    assert streams[0] == streams[1]


@pytest.mark.parametrize(("name", "clock"), [("opus", 48000), ("AMR-WB", 16000), ("G722", 8000)])
def test_a_real_wideband_codec_leg_and_a_pcmu_leg(name: str, clock: int) -> None:
    """A 1 kHz tone encoded by the phone's codec reaches the PCMU leg; the PCMU leg's 500 Hz reaches
    the codec leg (decoded by a codec object of the phone's own)."""
    from imsconf.media.codec_port import negotiated_codec

    eng = MediaEngine(allow_plain_rtp=True, rng=random.Random(1))
    w_addr, n_addr = ("192.0.2.8", 7200), ("192.0.2.8", 7202)
    eng.add_leg("w", "c", 25000, 25000, True)
    eng.configure_leg("w", LegConfig(w_addr, None, 96, name, 101, codec_clock=clock), None, None)
    eng.add_leg("n", "c", 25002, 25002, True)
    eng.configure_leg("n", LegConfig(n_addr, None, 0, "PCMU", 101), None, None)
    phone_enc, phone_dec = negotiated_codec(name, clock, {}), negotiated_codec(name, clock, {})
    step = clock // 50
    heard_w: list[np.ndarray] = []
    heard_n: list[np.ndarray] = []
    now = 0.0
    for i in range(60):
        pw = phone_enc.encode(tone(1000.0, 16000, 320, 320 * i))
        pn = ulaw_encode(tone(500.0, 8000, 160, 160 * i))
        eng.receive_batch(
            now,
            [
                (25000, HDR.pack(0x80, 96, i, step * i, 0x51) + pw, w_addr),
                (25002, HDR.pack(0x80, 0, i, 160 * i, 0x52) + pn, n_addr),
            ],
        )
        for port, data, _ in eng.tick(now):
            if 192 <= data[1] <= 223:
                continue
            if port == 25000:
                heard_w.append(phone_dec.decode(data[12:])[0])
            else:
                heard_n.append(ulaw_decode(data[12:]))
        now += T
    assert eng.leg_stats("w").corrupt == 0
    n = np.concatenate(heard_n[-25:])
    w = np.concatenate(heard_w[-25:])
    assert amp(n, 1000.0, 8000) > 3000 and amp(n, 500.0, 8000) < 100
    assert amp(w, 500.0, 16000) > 3000 and amp(w, 1000.0, 16000) < 300


@pytest.mark.parametrize(("name", "clock"), [("L16", 16000), ("opus", 48000), ("G722", 8000)])
def test_a_codec_leg_hears_its_prompt_by_its_own_codec_then_the_conference(name: str, clock: int) -> None:
    """``beep`` (1 kHz) played once to a codec leg reaches it, encoded by its codec, in place of the
    conference; when it ends (PromptFinished) the leg hears the PCMU leg's 500 Hz again."""
    from imsconf.media.codec_port import negotiated_codec
    from imsconf.media.engine import PromptFinished

    eng = MediaEngine(allow_plain_rtp=True, rng=random.Random(1))
    w_addr, n_addr = ("192.0.2.8", 7300), ("192.0.2.8", 7302)
    eng.add_leg("w", "c", 25100, 25100, True)
    eng.configure_leg("w", LegConfig(w_addr, None, 96, name, 101, codec_clock=clock), None, None)
    eng.add_leg("n", "c", 25102, 25102, True)
    eng.configure_leg("n", LegConfig(n_addr, None, 0, "PCMU", 101), None, None)
    phone_dec = negotiated_codec(name, clock, {})
    heard: list[np.ndarray] = []
    events: list[tuple[int, object]] = []
    now = 0.0
    for i in range(80):
        if i == 40:
            eng.play_prompt("w", "beep", loop=False)
        pn = ulaw_encode(tone(500.0, 8000, 160, 160 * i))
        eng.receive_batch(now, [(25102, HDR.pack(0x80, 0, i, 160 * i, 0x52) + pn, n_addr)])
        for port, data, _ in eng.tick(now):
            if port == 25100 and not 192 <= data[1] <= 223:
                pcm, _ = phone_dec.decode(data[12:])
                heard.append(np.asarray(pcm, dtype=np.int16))
        events.extend((i, ev) for ev in eng.events())
        now += T
    finished = [i for i, ev in events if ev == PromptFinished("w", "beep")]
    assert len(finished) == 1 and 46 <= finished[0] <= 50, finished  # 150 ms: 8 frames
    rate = phone_dec.sample_rate
    before = np.concatenate(heard[30:40])
    during = np.concatenate(heard[42:47])
    after = np.concatenate(heard[60:80])
    assert amp(before, 500.0, rate) > 1000 and amp(before, 1000.0, rate) < 200
    assert amp(during, 1000.0, rate) > 1000 and amp(during, 500.0, rate) < 200
    assert amp(after, 500.0, rate) > 1000 and amp(after, 1000.0, rate) < 200
