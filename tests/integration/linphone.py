"""A second real phone for tests: linphone 5.1 (``linphonec`` from Debian's ``linphone-cli``), headless.

linphone brings what baresip 1.0.0 lacks: its own RFC 4579 conference client (it SUBSCRIBEs to the
conference event package by itself and parses full and partial RFC 4575 documents) and SDES re-keying (it
takes a new ``a=crypto`` from a re-INVITE and switches keys both ways). It speaks SIP over TLS and verifies
the server certificate.

Usage::

    reg = StubRegistrar(service_route=f"<sip:localhost:{srv.tls_port};transport=tls;lr>").start()
    with LinphonePhone("alice", tmp / "alice", ca_pem=srv_ca, registrar=reg.uri, tone_wav=tone) as a:
        a.wait_registered()
        a.call(f"sip:conf-xyz@localhost:{srv.tls_port};transport=tls")
        a.wait_call_state("StreamsRunning", 10)
        a.wait_conference_state("Created", 10)       # its SUBSCRIBE got a NOTIFY with the roster
        a.terminate()
        a.wait_call_state("Released", 5)
    a.recording                                       # what alice heard (16-bit mono wav)

How linphonec 5.1.65 has to be run headless (everything here was needed; the driver does it):

* **One directory per instance**, used as ``HOME``; the rc file is written before the first start and
  never while it runs (linphonec saves its configuration over the file on exit).
* **The database directory must exist before the first start**: without ``$HOME/.local/share/linphone``
  (and ``[storage] uri=`` naming a file) liblinphone logs ``Unable to open linphone database`` and starts
  its core without opening a single SIP socket.
* **rc keys** (see :meth:`LinphonePhone.rc_text`): ``[sip] bind_address=127.0.0.1``, ``use_ipv6=0`` and
  ``ipv6_migration_done=1`` (without the latter linphone drops ``use_ipv6`` and offers ``c=IN IP6``),
  ``guess_hostname=0``, the three ``sip_*_port`` keys, ``media_encryption=srtp`` with
  ``media_encryption_mandatory=1`` (SDES: it offers four ``a=crypto`` lines in ``RTP/SAVP``),
  ``root_ca=`` the server's CA with ``verify_server_certs=1`` and ``verify_server_cn=1``;
  ``[rtp] bind_address=127.0.0.1`` (else its SDP names a non-loopback address) and ``audio_rtp_port``;
  ``[video] capture=0 display=0``; ``[misc] conference_type=remote``; a ``[proxy_0]`` section
  (``reg_proxy``, ``reg_identity``, ``reg_sendregister``, ``publish=0``) when it registers.
* **Commands** go to its standard input, one per line: ``soundcard use files`` (no sound card: it then
  plays the file given by ``play FILE`` and records into ``record FILE``), ``call URI``, ``terminate``
  (also ``terminate <call id>``, ``terminate all``), ``calls`` (ids and states on its stdout),
  ``autoanswer enable`` (for calls from the focus, e.g. a dial-out), ``conference add|rm <call id>``.
  ``-d 6 -l FILE`` logs everything, SIP messages included. It is stopped with SIGTERM to its PID (it sends
  BYE for a running call); an ALSA null device is not used because linphone then hangs in teardown.
* **TLS**: its mbedTLS matches the server certificate by DNS name only, never by an IP address SAN: dial
  ``sip:...@localhost:PORT;transport=tls`` (the server's dev certificate names ``localhost``).

Its conference client (liblinphone 5.1):

* On a 200 OK whose Contact carries ``;isfocus`` it creates a client conference object (log:
  ``Switching conference [...] from state None to Instantiated``, then ``CreationPending``) and SUBSCRIBEs
  to the Contact URI with ``Event: conference`` -- but only while its account (``proxy_0``) is registered.
  The server answers REGISTER with 405, hence :class:`StubRegistrar`, which says 200 OK.
* It drops the port from the conference URI it subscribes to, so the SUBSCRIBE would go to 5060/5061;
  :class:`StubRegistrar` returns a ``Service-Route`` naming the server's TLS port, and linphone routes the
  SUBSCRIBE (and its calls) through it.
* A full conference-info NOTIFY moves its conference to ``Created`` (``Addition of participant ...
  successful`` per user); partial NOTIFYs update the roster.
* A request from the focus whose Contact lacks ``;isfocus`` (a re-INVITE) makes it consider the conference
  left: ``Created -> TerminationPending -> Deleted``, it unsubscribes; the media go on.
* Joining is calling the conference URI; creating is calling the factory URI, like any other phone.
  Its own creation path (``conference_factory_uri`` on the account, ``conference add <call id>``) INVITEs
  the factory with ``Contact: ...;admin=1``, then REFERs the other party, and waits for a ``conf-id`` URI
  parameter in the focus's Contact (a convention of its own server): that conference object stays in
  ``CreationPending``, so it is not used here.

The codecs it offers by default (the server answers Opus, its preference): opus/48000, speex/16000,
speex/8000, PCMU, PCMA, G729, telephone-event; G722, GSM, AMR and AMR-WB are present but off
(``[audio_codec_N]`` sections).
Only the process started here is ever signalled, by its PID.
"""

from __future__ import annotations

import itertools
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from baresip import free_udp_range
from harness import ServerProcess, free_port_pair

from peers import require_peer

__all__ = [
    "LinphoneError",
    "LinphonePhone",
    "SipLogMessage",
    "StubRegistrar",
    "conference_target",
    "parse_sip_log",
    "start_conf_server",
    "wait_conference_user",
]

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} ", re.M)
_WIRE = re.compile(
    r"^(?P<ts>\S+ \S+) belle-sip-message-channel \[0x[0-9a-f]+\]: "
    r"(?:received \[\d+\] new bytes from \[(?P<src>[^\]]+)\]"
    r"|message sent to \[(?P<dst>[^\]]+)\], size: \[\d+\] bytes)"
)


class LinphoneError(AssertionError):
    pass


@dataclass(frozen=True)
class SipLogMessage:
    """One SIP message linphone logged as received or sent (``-d 6``)."""

    direction: str  # "in" or "out"
    peer: str  # e.g. "TLS://localhost:5061"
    text: str  # start line, headers and body, lines joined by "\n"

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        first = self.start_line
        return None if first.startswith("SIP/2.0") else first.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3})", self.start_line)
        return int(m.group(1)) if m else None

    def answers(self, method: str) -> bool:
        """True for a response to a *method* request (by its CSeq)."""
        return self.status is not None and any(c.split()[-1:] == [method] for c in self.header("CSeq"))

    def header(self, name: str) -> list[str]:
        head = re.split(r"\n\s*\n", self.text, maxsplit=1)[0]
        return [m.group(1).strip() for m in re.finditer(rf"(?im)^{re.escape(name)}\s*:\s*(.*?)\r?$", head)]

    @property
    def body(self) -> str:
        parts = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)
        return parts[1].strip() if len(parts) == 2 else ""


def parse_sip_log(text: str) -> list[SipLogMessage]:
    """The SIP messages in a linphone log, in order (a received chunk holding several is split)."""
    out: list[SipLogMessage] = []
    starts = [m.start() for m in _LOG_LINE.finditer(text)] + [len(text)]
    for a, b in itertools.pairwise(starts):
        entry = text[a:b]
        first, _, rest = entry.partition("\n")
        m = _WIRE.match(first)
        if m is None or not rest.strip():
            continue
        direction, peer = ("in", m.group("src")) if m.group("src") else ("out", m.group("dst") or "")
        for chunk in re.split(r"(?m)^(?=(?:SIP/2\.0 \d{3} |[A-Z]+ \S+ SIP/2\.0\s*$))", rest):
            if chunk.strip():
                out.append(SipLogMessage(direction, peer, chunk.rstrip("\n") + "\n"))
    return out


_CONF_CREATED = re.compile(r"event=conference_created\b.*?\bconf_uri=sips?:(?P<user>[^@\s]+)@")


def wait_conference_user(server_log: Callable[[], str], timeout: float = 5.0, nth: int = 1) -> str:
    """The user part (``conf-...``) of the *nth* conference the server logged as created."""
    deadline = time.monotonic() + timeout
    while True:
        users = [m.group("user") for m in _CONF_CREATED.finditer(server_log())]
        if len(users) >= nth:
            return users[nth - 1]
        if time.monotonic() >= deadline:
            raise LinphoneError(f"no conference_created server log line #{nth} within {timeout} s")
        time.sleep(0.05)


def conference_target(conf_user: str, tls_port: int) -> str:
    """What linphone dials to join: TLS to ``localhost`` (its certificate check wants a DNS name)."""
    return f"sip:{conf_user}@localhost:{tls_port};transport=tls"


def start_conf_server(data_dir: Path, config: Path, attempts: int = 3) -> ServerProcess:
    """The server with *config* and ``--auth none`` on a fresh port pair; a port taken by someone else
    between the pick and the bind (``Address already in use``) is retried on another pair."""
    for attempt in range(attempts):
        srv = ServerProcess(data_dir, free_port_pair())
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            srv.start("--config", str(config), auth="none")
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
            continue
        return srv
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------- registrar
@dataclass
class StubRegistrar:
    """A registrar on 127.0.0.1 (UDP) that says 200 OK to every REGISTER and returns ``service_route``.

    linphone only SUBSCRIBEs to a conference while its account is registered, and the server answers
    REGISTER with 405; nothing else is answered here. ``registrations`` counts the REGISTERs answered."""

    service_route: str | None = None
    port: int = 0
    registrations: int = 0
    contacts: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport=udp"

    def start(self) -> StubRegistrar:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", self.port))
        sock.settimeout(0.2)
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, name=f"registrar-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(data.decode("utf-8", "replace"))
            if reply is not None:
                try:
                    sock.sendto(reply.encode(), addr)
                except OSError:
                    return

    def answer(self, request: str) -> str | None:
        """The 200 OK for a REGISTER (None for anything else)."""
        head = request.split("\r\n\r\n", 1)[0].split("\r\n")
        if not head or not head[0].startswith("REGISTER "):
            return None

        def values(name: str) -> list[str]:
            pat = re.compile(rf"^{re.escape(name)}\s*:\s*(.*)$", re.I)
            return [m.group(1).strip() for line in head[1:] if (m := pat.match(line))]

        expires = (values("Expires") or ["3600"])[0]
        contacts = values("Contact")
        self.contacts.extend(contacts)
        to = values("To")[0] if values("To") else ""
        if ";tag=" not in to:
            to += f";tag={secrets.token_hex(4)}"
        lines = ["SIP/2.0 200 OK"]
        lines += [f"Via: {v}" for v in values("Via")]
        lines += [f"From: {v}" for v in values("From")]
        lines += [f"To: {to}"]
        lines += [f"{n}: {v}" for n in ("Call-ID", "CSeq") for v in values(n)]
        lines += [
            f"Contact: {c};expires={expires}" if "expires=" not in c else f"Contact: {c}" for c in contacts
        ]
        lines.append(f"Expires: {expires}")
        if self.service_route:
            lines.append(f"Service-Route: {self.service_route}")
        lines += ["Content-Length: 0", "", ""]
        self.registrations += 1
        return "\r\n".join(lines)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> StubRegistrar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- the phone
class LinphonePhone:
    """One linphonec process: identity ``sip:NAME@127.0.0.1``, SIP on 127.0.0.1 (UDP and TCP on one port,
    TLS on the next), SDES-SRTP mandatory by default, no sound card (wav file in, wav file out)."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        ca_pem: Path,
        registrar: str | None = None,
        tone_wav: Path | None = None,
        record: bool = True,
        sip_port: int | None = None,
        rtp_ports: tuple[int, int] | None = None,
        media_encryption: str = "srtp",
        auto_answer: bool = False,
        extra_rc: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.binary = require_peer("linphonec")
        self.name = name
        self.workdir = workdir
        self.ca_pem = ca_pem
        self.registrar = registrar
        self.tone_wav = tone_wav
        self.record = record
        self.sip_port = sip_port if sip_port is not None else free_port_pair()
        self.rtp_ports = rtp_ports if rtp_ports is not None else free_udp_range(4)
        self.media_encryption = media_encryption
        self.auto_answer = auto_answer
        self.extra_rc = extra_rc or {}
        self.rc_path = workdir / "rc"
        self.log_path = workdir / "linphone.log"
        self.stdout_path = workdir / "stdout.txt"
        self.cmds_path = workdir / "cmds"  # every command sent, for a reader of a failed test
        self.recording = workdir / "rec.wav"
        self.proc: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- addresses
    @property
    def tls_port(self) -> int:
        return self.sip_port + 1

    @property
    def aor(self) -> str:
        return f"sip:{self.name}@127.0.0.1"

    # ----------------------------------------------------------------- files
    def rc_sections(self) -> dict[str, dict[str, str]]:
        rtp = self.rtp_ports[0] + (self.rtp_ports[0] & 1)
        sections: dict[str, dict[str, str]] = {
            "sip": {
                "sip_port": str(self.sip_port),
                "sip_tcp_port": str(self.sip_port),  # a large NOTIFY to a UDP contact is retried over TCP
                "sip_tls_port": str(self.tls_port),
                "bind_address": "127.0.0.1",
                "use_ipv6": "0",
                "ipv6_migration_done": "1",
                "contact": f'"{self.name}" <{self.aor}>',
                "guess_hostname": "0",
                "media_encryption": self.media_encryption,
                "media_encryption_mandatory": "1" if self.media_encryption != "none" else "0",
                "root_ca": str(self.ca_pem),
                "verify_server_certs": "1",
                "verify_server_cn": "1",
                "default_proxy": "0" if self.registrar else "-1",
                "register_only_when_network_is_up": "0",
            },
            "rtp": {"bind_address": "127.0.0.1", "audio_rtp_port": str(rtp)},
            "video": {
                "capture": "0",
                "display": "0",
                "automatically_initiate": "0",
                "automatically_accept": "0",
            },
            "storage": {"backend": "sqlite3", "uri": str(self.workdir / "linphone.db")},
            "misc": {"conference_type": "remote"},
        }
        if self.registrar:
            sections["proxy_0"] = {
                "reg_proxy": f"<{self.registrar}>",
                "reg_identity": f'"{self.name}" <{self.aor}>',
                "reg_expires": "3600",
                "reg_sendregister": "1",
                "publish": "0",
                "dial_escape_plus": "0",
            }
        for sec, keys in self.extra_rc.items():
            sections.setdefault(sec, {}).update(keys)
        return sections

    def rc_text(self) -> str:
        out: list[str] = []
        for sec, keys in self.rc_sections().items():
            out.append(f"[{sec}]")
            out += [f"{k}={v}" for k, v in keys.items()]
            out.append("")
        return "\n".join(out)

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.rc_path.write_text(self.rc_text())
        self.cmds_path.write_text("")

    # ----------------------------------------------------------------- process
    def start(self, timeout: float = 10.0) -> LinphonePhone:
        """Write the rc, start linphonec, wait until its TLS listening point exists, switch to wav files."""
        if self.proc is not None:
            raise LinphoneError(f"{self.name}: already started")
        self.write_files()
        out = open(self.stdout_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
        env = {"HOME": str(self.workdir), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.rc_path), "-d", "6", "-l", str(self.log_path)],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
        )  # fmt: skip
        self.wait_log(
            rf"Creating listening point .* on \[sip:127\.0\.0\.1:{self.tls_port};transport=TLS\]", timeout
        )
        self.command("soundcard use files")
        if self.tone_wav is not None:
            self.command(f"play {self.tone_wav}")
        if self.record:
            self.command(f"record {self.recording}")
        if self.auto_answer:
            self.command("autoanswer enable")
        return self

    def command(self, line: str) -> None:
        """One linphonec command on its standard input."""
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise LinphoneError(f"{self.name}: linphonec is not running\n{self.log_tail()}")
        with self.cmds_path.open("a") as f:
            f.write(line + "\n")
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def call(self, uri: str) -> int:
        """``call URI``; returns the log mark just before it (for ``since=``)."""
        mark = self.mark()
        self.command(f"call {uri}")
        return mark

    def terminate(self) -> int:
        """Hang up the current call (BYE); returns the log mark just before it."""
        mark = self.mark()
        self.command("terminate")
        return mark

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to our PID (linphonec sends BYE for a running call, saves its rc); SIGKILL if stuck."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def cleanup(self) -> None:
        """Stop, then remove linphone's state (database, ZRTP cache, saved config); logs, recording stay."""
        self.stop()
        for rel in (".local", ".config", ".linphone-zidcache", "linphone.db"):
            p = self.workdir / rel
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()

    def __enter__(self) -> LinphonePhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- the log
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def mark(self) -> int:
        """The current end of the log (a ``since`` for the waits)."""
        return len(self.log_text())

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text()
        keep = [
            ln
            for ln in text.splitlines()
            if "liblinphone-" in ln or "belle-sip-message-channel" in ln or "error" in ln.lower()
        ][-lines:]
        return (
            f"--- {self.name} linphone log ({self.log_path}), last {len(keep)} notable lines ---\n"
            + "\n".join(keep)
        )

    def find_log(self, pattern: str | re.Pattern[str], since: int = 0) -> re.Match[str] | None:
        return re.compile(pattern).search(self.log_text(), since)

    def wait_log(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = 10.0,
        *,
        since: int = 0,
        fail_on: str | re.Pattern[str] | None = None,
    ) -> re.Match[str]:
        """The first match of *pattern* in the log at or after offset *since*; LinphoneError with the log tail
        on timeout, when the process exits, or as soon as *fail_on* matches first."""
        pat = re.compile(pattern)
        bad = re.compile(fail_on) if fail_on is not None else None
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            m = pat.search(text, since)
            if m is not None:
                return m
            if bad is not None and (b := bad.search(text, since)) is not None:
                raise LinphoneError(
                    f"{self.name}: {b.group(0)!r} while waiting for {pat.pattern!r}\n{self.log_tail()}"
                )
            if not self.alive():
                raise LinphoneError(
                    f"{self.name}: linphonec exited while waiting for {pat.pattern!r}\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise LinphoneError(f"{self.name}: no {pat.pattern!r} within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    # ----------------------------------------------------------------- states
    def wait_registered(self, timeout: float = 10.0, since: int = 0) -> None:
        self.wait_log(
            r"to \[LinphoneRegistrationOk\]",
            timeout,
            since=since,
            fail_on=r"to \[LinphoneRegistrationFailed\]",
        )

    def wait_call_state(self, state: str, timeout: float = 10.0, *, since: int = 0) -> re.Match[str]:
        """``CallSession [...] moving from state LinphoneCallX to LinphoneCall<state>``; fails early on
        LinphoneCallError when another state is awaited."""
        fail = (
            None if state in ("End", "Error", "Released") else r"moving from state \S+ to LinphoneCallError"
        )
        return self.wait_log(
            rf"moving from state \S+ to LinphoneCall{state}\b", timeout, since=since, fail_on=fail
        )

    def wait_conference_state(self, state: str, timeout: float = 10.0, *, since: int = 0) -> re.Match[str]:
        """``Switching conference [...] from state X to <state>`` (Instantiated, CreationPending, Created,
        TerminationPending, Terminated, Deleted)."""
        return self.wait_log(
            rf"Switching conference \[0x[0-9a-f]+\] from state \S+ to {state}\b", timeout, since=since
        )

    def conference_states(self, since: int = 0) -> list[str]:
        text = self.log_text()[since:]
        return re.findall(r"Switching conference \[0x[0-9a-f]+\] from state \S+ to (\S+)", text)

    def bandwidth(self, since: int = 0) -> list[tuple[float, float]]:
        """RTP (download, upload) kbit/s of the audio stream, one pair a second (linphone's own counters)."""
        text = self.log_text()[since:]
        return [
            (float(d), float(u))
            for d, u in re.findall(
                r"Stream #0 \(audio\) \| cpu: [^|]*\| RTP : \[d=([0-9.]+),u=([0-9.]+)\]", text
            )
        ]

    def sip_messages(self, since: int = 0) -> list[SipLogMessage]:
        return parse_sip_log(self.log_text()[since:])

    def received(self, method: str, since: int = 0) -> list[SipLogMessage]:
        """Requests of *method* linphone received."""
        return [m for m in self.sip_messages(since) if m.direction == "in" and m.method == method]

    def responses(self, method: str, since: int = 0) -> list[SipLogMessage]:
        """Responses linphone received to its *method* requests."""
        return [m for m in self.sip_messages(since) if m.direction == "in" and m.answers(method)]

    def sent(self, method: str, since: int = 0) -> list[SipLogMessage]:
        return [m for m in self.sip_messages(since) if m.direction == "out" and m.method == method]
