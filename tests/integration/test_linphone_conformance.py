"""What a real RFC 4579/4575 conference client (linphone 5.1) needs from the focus, one fault per test.

Each test is observed through linphone itself: its SIP trace (``-d 6`` logs every message it sends and
receives) and its own conference object (``Switching conference ... to <state>``, ``Addition of
participant ...``). A :class:`FocusFault` names the conformance fault a test is about; a phone that does
not start or a call that does not connect fails with its own error.

(a) A focus request must carry ``;isfocus`` in its Contact (RFC 4579 §5.4), re-INVITEs included: linphone
    treats a re-INVITE without it as "the conference is gone", unsubscribes and stops following it.
(b) The ``entity`` of conference-info (RFC 4575 §5.1) is the conference URI, the one the focus gave as its
    Contact (user and host: the Contact adds the listener's port, which linphone leaves out of the
    conference's identity): linphone matches the document against the conference it joined and ignores
    any other.
(c) ``<when>`` (RFC 4575 §5.7.1.2) is a real UTC date-time, not a monotonic clock read as POSIX time.
(d) A participant's subscription ends when it leaves: it gets a ``Subscription-State: terminated`` NOTIFY
    (linphone also unsubscribes itself, RFC 6665 §4.2.1.4, which needs the same terminated NOTIFY).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audio import write_tone_wav
from baresip import BaresipPhone, free_udp_range
from harness import ServerProcess
from linphone import (
    LinphoneError,
    LinphonePhone,
    SipLogMessage,
    StubRegistrar,
    conference_target,
    start_conf_server,
    wait_conference_user,
)

from peers import require_peer

ServerFactory = Callable[[str], ServerProcess]
ENTITY = re.compile(r"<conference-info\b[^>]*\bentity=\"([^\"]+)\"")
WHEN = re.compile(r"<when>([^<]+)</when>")
URI_PARTS = re.compile(r"^<?(sips?):([^@;>]+)@([^:;>]+)(?::(\d+))?")


class FocusFault(AssertionError):
    """The conformance fault a test is about."""


def expect(cond: object, msg: str) -> None:
    if not cond:
        raise FocusFault(msg)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start the server with ``extra`` config lines (e.g. group downlink keying)."""
    started: list[ServerProcess] = []

    def start(extra: str = "") -> ServerProcess:
        lo, hi = free_udp_range(40)
        cfg = tmp_path / "imsconf.toml"
        cfg.write_text(f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\n{extra}')
        srv = start_conf_server(tmp_path / "srv", cfg)
        started.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in started:
            srv.stop()


class Conf:
    """A conference created by baresip ``bob`` at the factory, joined by a registered linphone ``alice``
    (so alice subscribes to it). ``stop()`` ends everything started here."""

    def __init__(self, srv: ServerProcess, tmp: Path) -> None:
        require_peer("linphonec")
        require_peer("baresip")
        self.srv = srv
        self.tmp = tmp
        pki = srv.data_dir / "pki"
        self.ca, self.combined = pki / "ca.pem", pki / "server-combined.pem"
        self.silence = write_tone_wav(tmp / "silence.wav", 440.0, seconds=60, amplitude=0.0)
        self.registrar = StubRegistrar(service_route=f"<sip:localhost:{srv.tls_port};transport=tls;lr>")
        self.registrar.start()
        self.baresips: list[BaresipPhone] = []
        self.bob = self.baresip("bob")
        self.alice = LinphonePhone("alice", tmp / "alice", ca_pem=self.ca, registrar=self.registrar.uri,
                                   tone_wav=write_tone_wav(tmp / "alice.wav", 620.0, seconds=60))  # fmt: skip
        self.conf_user = ""
        self.focus_contact = ""
        self.joined_at = 0  # alice's log mark before her INVITE

    def baresip(self, name: str) -> BaresipPhone:
        p = BaresipPhone(name, self.tmp / name, tone_wav=self.silence, ca_pem=self.ca,
                         cert_combined_pem=self.combined)  # fmt: skip
        self.baresips.append(p)
        return p.start()

    def join_baresip(self, p: BaresipPhone) -> None:
        p.dial(f"sip:{self.conf_user}@127.0.0.1:{self.srv.tls_port}")
        p.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))

    def start(self) -> Conf:
        self.alice.start()
        self.alice.wait_registered()
        self.bob.dial(f"sip:conference-factory@127.0.0.1:{self.srv.tls_port}")
        self.bob.wait_event("CALL_ESTABLISHED", 10, fail_on=("CALL_CLOSED",))
        self.conf_user = wait_conference_user(self.srv.log)
        self.joined_at = self.alice.call(conference_target(self.conf_user, self.srv.tls_port))
        self.alice.wait_call_state("StreamsRunning", 10, since=self.joined_at)
        ok = next(m for m in self.alice.responses("INVITE", self.joined_at) if m.status == 200)
        self.focus_contact = ok.header("Contact")[0]
        self.alice.wait_log(r"NOTIFY received for conference", 5, since=self.joined_at)
        return self

    def notifies(self, since: int | None = None) -> list[SipLogMessage]:
        return self.alice.received("NOTIFY", self.joined_at if since is None else since)

    def stop(self) -> None:
        self.alice.stop()
        for p in self.baresips:
            p.stop()
        self.registrar.stop()

    def explain(self, exc: BaseException) -> AssertionError:
        """*exc* with the server log tail and alice's SIP trace; a FocusFault stays one."""
        lines = [str(exc), "", "--- server log (last 40 lines) ---", *self.srv.log().splitlines()[-40:]]
        lines += ["", "--- SIP messages alice saw ---"]
        lines += [
            f"{m.direction} {m.start_line} | {m.header('CSeq')} {m.header('Subscription-State')} "
            f"{m.header('Contact')}"
            for m in self.alice.sip_messages(self.joined_at)
        ]
        lines.append(f"alice conference states: {self.alice.conference_states()}")
        cls = FocusFault if isinstance(exc, FocusFault) else AssertionError
        return cls("\n".join(lines))


@pytest.fixture
def conf_factory(start_server: ServerFactory, tmp_path: Path) -> Iterator[Callable[[str], Conf]]:
    confs: list[Conf] = []

    def make(extra: str = "") -> Conf:
        c = Conf(start_server(extra), tmp_path)
        confs.append(c)
        try:
            return c.start()
        except (AssertionError, LinphoneError, RuntimeError) as exc:
            raise c.explain(exc) from exc

    try:
        yield make
    finally:
        for c in confs:
            c.stop()


def _uri_key(uri: str) -> tuple[str, str]:
    """(user, host) of a SIP URI or name-addr: a conference's identity (scheme, port and parameters are
    where to reach it, not what it is)."""
    m = URI_PARTS.match(uri.strip())
    assert m, f"not a SIP URI: {uri!r}"
    return m.group(2), m.group(3).lower()


# ------------------------------------------------------------------------------------------------- (a)
@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_key_reinvite_keeps_linphone_subscribed(conf_factory: Callable[[str], Conf]) -> None:
    # the group downlink's common stream is PCMU: linphone would get Opus (the server's preference) and
    # keep its own key, so this server answers G.711 only
    c = conf_factory('downlink = "group"\nrekey = "both"\naudio_codecs = ["PCMU", "PCMA"]\n')
    alice = c.alice
    try:
        carol = c.baresip("carol")
        c.join_baresip(carol)  # the third join: a group rekey, key re-INVITEs (new a=crypto) to alice
        alice.wait_log(r"(?m)^INVITE sip:alice@", 15, since=c.joined_at)  # a request to her, not her own
        time.sleep(1.0)  # alice answers it and acts on it
        reinvites = alice.received("INVITE", c.joined_at)
        for r in reinvites:
            contact = r.header("Contact")
            expect(
                contact and ";isfocus" in contact[0], f"focus re-INVITE Contact without ;isfocus: {contact}"
            )
        leave = alice.mark()
        carol.hangup()  # a roster change alice must still hear of
        carol.wait_event("CALL_CLOSED", 5)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not c.notifies(leave):
            time.sleep(0.1)
        after = [n for n in c.notifies(leave) if n.header("Subscription-State")[0].startswith("active")]
        expect(after, "no active NOTIFY to alice after the rekey (carol's leave)")
        unsub = [s for s in alice.sent("SUBSCRIBE", c.joined_at) if s.header("Expires") == ["0"]]
        expect(not unsub, "alice unsubscribed from the conference while still in it")
        states = alice.conference_states(c.joined_at)
        expect("TerminationPending" not in states, f"alice's conference object ended: {states}")
        assert not alice.find_log(r"to LinphoneCallEnd\b", c.joined_at), "alice's call ended"
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise c.explain(exc) from exc


# ------------------------------------------------------------------------------------------------- (b)
@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_linphone_roster_fills_from_notify(conf_factory: Callable[[str], Conf]) -> None:
    c = conf_factory("")
    alice = c.alice
    try:
        contact = _uri_key(c.focus_contact)
        entities = [m.group(1) for n in c.notifies() if (m := ENTITY.search(n.body))]
        assert entities, "no conference-info body reached alice"
        wrong = [e for e in entities if _uri_key(e) != contact]
        expect(not wrong, f"conference-info entity {wrong[:1]} is not the focus Contact {c.focus_contact!r}")
        try:
            alice.wait_conference_state("Created", 5, since=c.joined_at)
        except LinphoneError as exc:
            raise FocusFault(f"alice's conference object never reached Created: {exc}") from exc
        # the full document filled the roster (it logs nothing per user then); a partial one adds carol
        mark = alice.mark()
        c.join_baresip(c.baresip("carol"))
        try:
            alice.wait_log(
                r"Addition of participant with address \S*\(sip:carol@[^)]*\) .*successful", 5, since=mark
            )
        except LinphoneError as exc:
            raise FocusFault(f"carol's join did not reach alice's roster: {exc}") from exc
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise c.explain(exc) from exc


# ------------------------------------------------------------------------------------------------- (c)
@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_notify_when_is_wall_clock_utc(conf_factory: Callable[[str], Conf]) -> None:
    c = conf_factory("")
    try:
        now = datetime.now(UTC)
        whens = [w for n in c.notifies() for w in WHEN.findall(n.body)]
        assert whens, "no <when> in the conference-info alice received"
        for w in whens:
            t = datetime.fromisoformat(w.replace("Z", "+00:00"))
            expect(t.tzinfo is not None, f"<when>{w}</when> has no time zone")
            expect(abs((t - now).total_seconds()) < 60, f"<when>{w}</when> is not within a minute of {now}")
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise c.explain(exc) from exc


# ------------------------------------------------------------------------------------------------- (d)
@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_leaving_ends_subscription_with_terminated_notify(conf_factory: Callable[[str], Conf]) -> None:
    c = conf_factory("")
    alice = c.alice
    try:
        time.sleep(1.0)
        mark = alice.terminate()
        alice.wait_call_state("Released", 5, since=mark)
        deadline = time.monotonic() + 5.0
        states: list[str] = []
        while time.monotonic() < deadline:
            states = [s for n in c.notifies(mark) for s in n.header("Subscription-State")]
            if any(s.startswith("terminated") for s in states):
                break
            time.sleep(0.1)
        expect(
            any(s.startswith("terminated") for s in states),
            f"alice left, but no NOTIFY ended her subscription (Subscription-State after the BYE: {states})",
        )
    except (AssertionError, LinphoneError, RuntimeError) as exc:
        raise c.explain(exc) from exc
