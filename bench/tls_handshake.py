"""Server CPU per TLS handshake of the media-plane listeners: the standard library's TLS (a verifying
``CERT_OPTIONAL`` context, as before docs/decisions/0020-pyopenssl-tls.md) against
``imsconf.app.tls_accept.TlsServer`` (pyOpenSSL memory BIOs), TLS 1.3 and 1.2.

Each server runs in a child process (an echo of one octet); the parent makes N handshakes in a row with a
client certificate from the conference CA (so that both servers accept it), and the child reports its
user+system CPU time over them. Also the wall time per handshake seen by the client, and the server CPU
per echoed 1 KB record on one connection (the size of a chat message), 10 records per handshake.

Run: ``.venv/bin/python bench/tls_handshake.py [handshakes]``
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
import ssl
import sys
import tempfile
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from imsconf.app.pki import PkiPaths, ensure_dev_pki, issue_cert
from imsconf.app.tls_accept import TlsServer


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _serve(kind: str, pki: PkiPaths, out: Queue[float], done: Event) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        if kind == "stdlib":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(pki.server_cert, pki.server_key)
            ctx.load_verify_locations(cafile=pki.ca_cert)
            ctx.verify_mode = ssl.CERT_OPTIONAL
            server = await loop.create_server(_Echo, "127.0.0.1", 0, ssl=ctx)
        else:
            tls = TlsServer(pki.server_cert, pki.server_key, pki.ca_cert)
            server = await loop.create_server(lambda: tls.wrap(_Echo()), "127.0.0.1", 0)
        before = os.times()
        out.put(float(server.sockets[0].getsockname()[1]))
        await loop.run_in_executor(None, done.wait)
        after = os.times()
        out.put((after.user - before.user) + (after.system - before.system))
        server.close()

    asyncio.run(main())


def measure(kind: str, version: ssl.TLSVersion, pki: PkiPaths, cert: tuple[Path, Path], n: int) -> None:
    out: Queue[float] = mp.Queue()
    done = mp.Event()
    child = mp.Process(target=_serve, args=(kind, pki, out, done))
    child.start()
    port = int(out.get())
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(*cert)
    ctx.minimum_version = ctx.maximum_version = version
    start = time.perf_counter()
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port))
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"x")
            assert sock.recv(1) == b"x"
    wall = time.perf_counter() - start
    done.set()
    cpu = out.get()
    child.join()
    records = 10 * n
    data_cpu = _records(kind, pki, ctx, records)
    print(
        f"{kind:9s} {version.name}: server CPU {cpu / n * 1e3:.2f} ms/handshake,"
        f" wall {wall / n * 1e3:.2f} ms; {data_cpu / records * 1e6:.0f} us per 1 KB record echoed"
    )


def _records(kind: str, pki: PkiPaths, ctx: ssl.SSLContext, n: int) -> float:
    out: Queue[float] = mp.Queue()
    done = mp.Event()
    child = mp.Process(target=_serve, args=(kind, pki, out, done))
    child.start()
    port = int(out.get())
    payload = bytes(1024)
    raw = socket.create_connection(("127.0.0.1", port))
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        for _ in range(n):
            sock.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(sock.recv(65536))
    done.set()
    cpu = out.get()
    child.join()
    return cpu


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as tmp:
        pki = ensure_dev_pki(Path(tmp), ["localhost"])
        cert = issue_cert(pki, "bench", Path(tmp) / "certs")
        for kind in ("stdlib", "pyopenssl", "stdlib", "pyopenssl"):
            for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
                measure(kind, version, pki, cert, n)


if __name__ == "__main__":
    main()
