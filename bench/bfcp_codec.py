"""Throughput of the BFCP codec: encode, parse and frame a FloorStatus with two FLOOR-REQUEST-INFORMATIONs.

Run: ``.venv/bin/python bench/bfcp_codec.py``
"""

from __future__ import annotations

import time

from imsconf.floor.attributes import (
    BeneficiaryInformation,
    FloorId,
    FloorRequestInformation,
    FloorRequestStatus,
    OverallRequestStatus,
    Priority,
    RequestStatus,
    UserDisplayName,
)
from imsconf.floor.codec import BfcpFramer, Message
from imsconf.floor.constants import Primitive, RequestState


def main(n: int = 20000) -> None:
    fris = tuple(
        FloorRequestInformation(
            i,
            (FloorRequestStatus(2, RequestStatus(RequestState.PENDING, i)),),
            OverallRequestStatus(i, RequestStatus(RequestState.PENDING, i)),
            BeneficiaryInformation(i, UserDisplayName(f"user {i}")),
            None,
            Priority(),
        )
        for i in (1, 2)
    )
    msg = Message(Primitive.FLOOR_STATUS, 4321, 0, 7, (FloorId(2), *fris))
    wire = bytes(msg)
    for label, fn in (
        ("encode", lambda: bytes(msg)),
        ("parse", lambda: Message.parse(wire)),
    ):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        print(f"{label:>6}: {n / dt:10.0f} msg/s ({len(wire)} octets)")
    framer = BfcpFramer()
    stream = wire * 100
    t0 = time.perf_counter()
    for _ in range(n // 100):
        assert len(framer.feed(stream)) == 100
    dt = time.perf_counter() - t0
    print(f" frame: {n / dt:10.0f} msg/s (100 pipelined per feed)")


if __name__ == "__main__":
    main()
