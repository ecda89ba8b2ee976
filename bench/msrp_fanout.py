"""MSRP chat fan-out: messages per second relayed to 100 participants, and the delivery latency.

In one process: the chat switch (``imsconf.focus.chat.FocusChat``) behind the runtime's MSRP listener
(``imsconf.app.msrp.MsrpListeners``, plain TCP on loopback) and N asyncio clients, one connection each,
which answer every SEND with 200. Participants join a conference of the model and negotiate their stream
through the switch's SDP answer, as the focus would.

* throughput: one participant sends a burst of messages back to back; the rate is messages fanned out to
  all N-1 others per second (and deliveries per second), until the last delivery;
* latency: messages at a steady rate from rotating senders; p50/p99 from the sender's write to each
  recipient's complete read.

Run: ``.venv/bin/python bench/msrp_fanout.py [participants] [burst] [rate]``
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable

from imsconf.app.msrp import MsrpListeners
from imsconf.conference.events import ParticipantJoined
from imsconf.conference.registry import ConferenceRegistry
from imsconf.focus.chat import FocusChat
from imsconf.im.cpim import parse_cpim
from imsconf.im.msrp import ByteRange, Frame, MsrpParser, MsrpUri, render
from imsconf.sdp.session import SessionDescription

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\nm=message 9 TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\n"
    "a=path:msrp://127.0.0.1:9/{sid};tcp\r\n"
)
ANSWER = SessionDescription.parse(
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5000 RTP/AVP 0\r\nm=message 0 TCP/MSRP *\r\n"
)


class Client:
    def __init__(self, own: MsrpUri, focus: MsrpUri, on_message: Callable[[bytes], None]) -> None:
        self.own, self.focus, self.on_message = own, focus, on_message
        self.parser = MsrpParser()
        self.parts: dict[str, bytes] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.n = 0

    async def connect(self, port: int) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.reader = reader
        self.send(b"")
        asyncio.get_running_loop().create_task(self.read())

    def send(self, body: bytes) -> None:
        assert self.writer is not None
        self.n += 1
        headers = (
            ("To-Path", str(self.focus)),
            ("From-Path", str(self.own)),
            ("Message-ID", f"m{self.n}"),
            ("Byte-Range", str(ByteRange(1, len(body), len(body)))),
            ("Content-Type", "text/plain"),
        )
        self.writer.write(render(Frame(f"t{self.n:07d}", method="SEND", headers=headers, body=body)))

    async def read(self) -> None:
        assert self.writer is not None
        while data := await self.reader.read(65536):
            out = []
            for f in self.parser.feed(data):
                if f.method != "SEND":
                    continue
                out.append(
                    render(
                        Frame(
                            f.tid,
                            status=200,
                            comment="OK",
                            headers=(("To-Path", str(self.focus)), ("From-Path", str(self.own))),
                        )
                    )
                )
                mid = f.message_id or ""
                self.parts[mid] = self.parts.get(mid, b"") + (f.body or b"")
                if f.flag == "$":
                    self.on_message(parse_cpim(self.parts.pop(mid)).body)
            if out:
                self.writer.write(b"".join(out))


async def run(participants: int, burst: int, rate: float) -> None:
    loop = asyncio.get_running_loop()
    chat = FocusChat(allow_plain=True, history=0)
    listeners = MsrpListeners(chat)
    port = await listeners.add("TCP/MSRP", "127.0.0.1", 0, advertise="127.0.0.1")
    registry = ConferenceRegistry("bench.example", scheme="sip")
    now = loop.time()
    conf = registry.create(now, owner="sip:u0@bench.example")
    received: list[float] = []
    latencies: list[float] = []

    def sink(body: bytes) -> None:
        t = loop.time()
        received.append(t)
        latencies.append(t - float(body.decode()))

    clients: list[Client] = []
    for i in range(participants):
        events = conf.join(f"sip:u{i}@bench.example", now)
        pid = next(e for e in events if isinstance(e, ParticipantJoined)).participant.participant_id
        offer = SessionDescription.parse(OFFER.format(sid=f"c{i:04d}").encode())
        answer = chat.answer(conf, f"{conf.conf_id}.{pid}", pid, "127.0.0.1", offer, ANSWER)
        path = answer.media[1].get_attribute("path")
        assert path is not None
        client = Client(MsrpUri.parse(f"msrp://127.0.0.1:9/c{i:04d};tcp"), MsrpUri.parse(path), sink)
        await client.connect(port)
        clients.append(client)
    await asyncio.sleep(0.5)
    others = participants - 1

    # throughput: a burst from one sender
    received.clear()
    latencies.clear()
    t0 = loop.time()
    for _ in range(burst):
        clients[0].send(f"{loop.time():.9f}".encode())
    while len(received) < burst * others and loop.time() - t0 < 120:
        await asyncio.sleep(0.01)
    elapsed = (received[-1] if received else loop.time()) - t0
    print(
        f"participants={participants} burst={burst}: {burst / elapsed:.0f} messages/s fanned out, "
        f"{len(received) / elapsed:.0f} deliveries/s ({len(received)}/{burst * others} delivered)"
    )

    # latency at a steady rate
    received.clear()
    latencies.clear()
    count = int(rate * 5)
    for n in range(count):
        clients[n % participants].send(f"{loop.time():.9f}".encode())
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(1.0)
    lat = sorted(latencies)
    if lat:
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(
            f"steady {rate:.0f} messages/s for 5 s: {len(lat)}/{count * others} delivered, "
            f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1] * 1000:.2f} ms"
        )
    for client in clients:
        if client.writer is not None:
            client.writer.close()
    await listeners.close()


def main() -> None:
    args = [float(a) for a in sys.argv[1:]]
    participants = int(args[0]) if args else 100
    burst = int(args[1]) if len(args) > 1 else 500
    rate = args[2] if len(args) > 2 else 50.0
    t = time.perf_counter()
    asyncio.run(run(participants, burst, rate))
    print(f"total {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
