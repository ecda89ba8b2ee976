"""Admission of new requests under load: a call budget that follows the measured load, flood marks per
source, sans-I/O.

Everything takes ``now``; a request over a limit is answered ``503 Service Unavailable`` with
``Retry-After``, statelessly (no transaction, no media leg, nothing retransmitted), so an overload costs
one small answer per attempt while established calls keep their media
(docs/decisions/0006-sip-connection-limits.md, "INVITE floods"):

* **Flooding sources** (as Kamailio's pike). Every new out-of-dialog request from one source address
  takes a token of that source's bucket (``source_rate`` per second, ``source_burst`` deep; a new source
  starts with ``source_start`` of it and earns the rest by staying under its rate). A source
  whose bucket runs dry is *marked flooding*: while marked, all its new out-of-dialog requests are
  refused (the runtime answers them from a few header fields, without a full parse: :mod:`.refusal`).
  Its attempts are still counted per ``flood_window``; the mark is renewed for ``flood_hold`` seconds
  from the end of every window in which they were above ``source_rate`` (not below it: a caller marked
  for a catch-up burst that goes on under its rate must get its mark back off), so it lapses at most
  ``flood_window + flood_hold`` after the source slows down or stops, and its bucket starts again then.
  Sources in ``exempt`` (trusted proxies, which carry many users) are never limited or marked.
* **The call budget follows the load.** New INVITEs that passed their source's limit take a token of the
  server's call budget. Its rate starts at ``invite_rate`` (the ceiling) and is adjusted by
  :meth:`Admission.observe_load`, which the runtime calls every ``load_window`` with how busy its event
  loop was (the share of the window spent in SIP work other than the stateless refusals of flooding
  sources, and the lag of a short timer): above
  ``busy_high`` (or a lag above ``lag_high``) the rate is multiplied by ``cut`` (not below
  ``invite_floor``); below ``busy_low`` and ``lag_low`` it grows by ``grow`` times the ceiling per window,
  between the marks by ``creep`` times the ceiling (a budget cut by a burst would otherwise stay below
  a steady load whose busy share lies between the marks, refusing its calls for good). A cut takes
  ``cut_after`` high windows in a row (one late timer is not a load). The lag counts only as the loop's
  own: not when its thread ran less than ``starved_cpu`` of the window (it waited for a core: other
  processes' work, which a cut does not lessen) and not while a source is marked (the flood's refusals
  and socket backlog are the cause; a cut would refuse the other sources' calls, not the flood's
  datagrams); such a lag does not slow the growth either. A starved loop's busy share is taken of the
  CPU time its thread got instead of the window, so the budget still follows what the loop can carry.
  The loop so keeps headroom for in-dialog requests, ACKs and the media tick.

In-dialog requests, ACK, CANCEL and retransmissions are never limited here: they belong to calls that
were admitted (and a flooding source's established calls live on). Memory is bounded: at most
``max_sources`` sources are tracked (the oldest goes first).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Admission", "LoadSample", "OverloadConfig", "Verdict"]


class Verdict(enum.Enum):
    ADMIT = "admit"
    BUSY = "busy"  # the server's call budget is spent: 503 with Retry-After
    SOURCE_BUSY = "source-busy"  # the source is over its rate (marked flooding): 503 with Retry-After


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    # off by default here: the runtime sets them from its settings (sip_call_rate, sip_source_rate)
    invite_rate: float = 0.0  # new calls per second admitted at most (0: no call budget)
    invite_burst: float = 400.0
    source_rate: float = 0.0  # new out-of-dialog requests per second from one source (0: no limit)
    source_burst: float = 600.0
    # the share of source_burst in the bucket of a source that is new or whose mark just lapsed: it earns
    # the rest by staying under its rate, so a flood that starts (or starts again) is marked after a few
    # requests, not after a whole burst of admitted calls (1: a full bucket; the runtime sets a tenth)
    source_start: float = 1.0
    retry_after: int = 5  # seconds, in the 503
    max_sources: int = 10000
    flood_window: float = 1.0  # seconds: a flooding source's attempts are counted per window
    flood_hold: float = 0.0  # seconds the mark holds after a window above the rate (0: no marks, only
    # the source's bucket; the runtime sets sip_flood_hold)
    # the adaptive call budget (observe_load): the figures are shares of a window and seconds of lag
    invite_floor: float = 20.0  # calls per second the budget is never cut below
    busy_high: float = 0.60
    busy_low: float = 0.40
    lag_high: float = 0.050  # two and a half media ticks
    lag_low: float = 0.010
    cut: float = 0.7
    cut_after: int = 1  # consecutive high windows before the budget is cut (1: at the first)
    # the share of a window the loop's thread must have run for its timer lag to count as load: a lag
    # while the thread mostly waited for a core is the machine's other work, which a smaller budget does
    # not lessen (0: every lag counts)
    starved_cpu: float = 0.0
    grow: float = 0.05
    creep: float = 0.0125  # the growth per window between the marks (a quarter of grow)
    overload_hold: float = 2.0  # seconds after the last refusal the server counts as overloaded

    def __post_init__(self) -> None:
        values = {
            "invite_rate": self.invite_rate,
            "invite_burst": self.invite_burst,
            "source_rate": self.source_rate,
            "source_burst": self.source_burst,
            "invite_floor": self.invite_floor,
        }
        for name, value in values.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.invite_rate and self.invite_burst < 1:
            raise ValueError("invite_burst must be at least 1 when invite_rate is set")
        if self.source_rate and self.source_burst < 1:
            raise ValueError("source_burst must be at least 1 when source_rate is set")
        if not 1 <= self.retry_after <= 3600:
            raise ValueError("retry_after must be 1 to 3600 seconds")
        if not 0 < self.source_start <= 1:
            raise ValueError("source_start must be in (0, 1]")
        if self.flood_window <= 0 or self.flood_hold < 0:
            raise ValueError("flood_window must be positive and flood_hold not negative")
        if self.cut_after < 1 or not 0 <= self.starved_cpu <= 1:
            raise ValueError("cut_after must be at least 1 and starved_cpu in [0, 1]")
        if not 0 < self.cut < 1 or not 0 < self.grow <= 1 or not 0 <= self.creep <= self.grow:
            raise ValueError("cut must be in (0, 1), grow in (0, 1] and creep in [0, grow]")
        if not 0 <= self.busy_low <= self.busy_high or not 0 <= self.lag_low <= self.lag_high:
            raise ValueError("the low marks must not be above the high marks")


@dataclass(frozen=True, slots=True)
class LoadSample:
    """How busy the event loop was over one window: the share of it spent in SIP work (0..1 and more
    when work started in an earlier window) and the largest lag of the runtime's short timer (seconds).
    *shed*: the share spent in stateless refusals of flooding sources, not part of *busy* and not
    acted on (a smaller budget would not make them fewer; the lag shows a loop they saturate).
    *cpu*: the share of the window the loop's thread ran at all (its CPU time, any work); None when not
    measured. A lag with a low *cpu* is starvation by other processes, not the loop's own load."""

    busy: float
    lag: float
    shed: float = 0.0
    cpu: float | None = None


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float

    def take(self, rate: float, burst: float, now: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Source:
    bucket: _Bucket
    flooding_until: float = 0.0  # marked while now < this
    window_at: float = 0.0  # when the current counting window began
    window_count: int = 0  # attempts in it


@dataclass(slots=True)
class Admission:
    """See the module docstring. ``exempt(host)`` names sources without a per-source limit."""

    config: OverloadConfig = field(default_factory=OverloadConfig)
    exempt: Callable[[str], bool] = field(default=lambda host: False)
    counters: dict[str, int] = field(default_factory=dict)
    rate: float = -1.0  # the call budget's current rate (set from the config at construction)
    _calls: _Bucket | None = None
    _sources: dict[str, _Source] = field(default_factory=dict)
    _flooding: dict[str, float] = field(default_factory=dict)  # marked host -> when its mark lapses
    _logged: dict[str, float] = field(default_factory=dict)  # host -> when its last line was logged
    _strained_at: float = float("-inf")  # the last refusal
    _high: int = 0  # consecutive high load windows
    _late: int = 0  # consecutive windows with the timer late (above lag_high), whatever the cause

    def __post_init__(self) -> None:
        if self.rate < 0:
            self.rate = self.config.invite_rate

    # ---- verdicts --------------------------------------------------------------------------------
    def flooding(self, host: str, now: float) -> bool:
        """True while *host* is marked flooding: its new out-of-dialog requests will be refused (one dict
        lookup: the runtime asks it before parsing a datagram)."""
        until = self._flooding.get(host)
        if until is None:
            return False
        if now < until:
            return True
        src = self._sources.get(host)
        if src is not None:
            # the window that ends with this mark is closed here, before the request is parsed: a source
            # that stayed above its rate in it keeps its mark, and its requests keep the quick refusal
            self._close_window(src, now)
            if src.flooding_until > now:
                self._flooding[host] = src.flooding_until
                return True
        del self._flooding[host]
        return False

    def new_request(self, host: str, method: str, now: float) -> Verdict:
        """The verdict on a new out-of-dialog request (not ACK/CANCEL, not a retransmission)."""
        cfg = self.config
        if cfg.source_rate and not self.exempt(host) and not self._source_admits(host, now):
            self._count("source_busy_503")
            self._strained_at = now
            return Verdict.SOURCE_BUSY
        if method == "INVITE" and cfg.invite_rate:
            burst = max(1.0, cfg.invite_burst * self.rate / cfg.invite_rate)  # scaled with the rate
            if self._calls is None:
                self._calls = _Bucket(burst, now)
            if not self._calls.take(self.rate, burst, now):
                self._count("busy_503")
                self._strained_at = now
                return Verdict.BUSY
        return Verdict.ADMIT

    def _source_admits(self, host: str, now: float) -> bool:
        cfg = self.config
        src = self._sources.get(host)
        if src is None:
            if len(self._sources) >= cfg.max_sources:
                old = next(iter(self._sources))
                self._sources.pop(old)
                self._flooding.pop(old, None)
            src = self._sources[host] = _Source(_Bucket(self._start_tokens(), now), window_at=now)
        if self._close_window(src, now) and src.flooding_until > now:  # renewed: still marked
            self._flooding[host] = src.flooding_until
        src.window_count += 1
        if src.flooding_until:
            if now < src.flooding_until:
                return False
            src.flooding_until = 0.0  # the mark lapsed: a fresh start
            src.bucket = _Bucket(self._start_tokens(), now)
            self._flooding.pop(host, None)
            self._count("source_flood_ended")
        if src.bucket.take(cfg.source_rate, cfg.source_burst, now):
            return True
        if cfg.flood_hold <= 0:
            return False
        src.flooding_until = now + cfg.flood_hold
        src.window_at, src.window_count = now, 0
        self._flooding[host] = src.flooding_until
        self._count("source_flood_marked")
        return False

    def _start_tokens(self) -> float:
        cfg = self.config
        return max(1.0, cfg.source_burst * cfg.source_start)

    def _close_window(self, src: _Source, now: float) -> bool:
        """Close *src*'s counting window if it ended (at ``window_at + flood_window``; True): a mark is
        renewed from that end while the source stayed above its rate in it, so it lapses at most window +
        hold after the source slowed down."""
        cfg = self.config
        closed = src.window_at + cfg.flood_window
        if now < closed:
            return False
        if src.flooding_until and src.window_count > cfg.source_rate * cfg.flood_window:
            src.flooding_until = max(src.flooding_until, closed + cfg.flood_hold)
        # the windows of a source that goes on follow each other without a gap, so a renewed mark (hold as
        # long as a window) reaches the end of the next window and is renewed again before it lapses
        src.window_at = closed if now < closed + cfg.flood_window else now
        src.window_count = 0
        return True

    # ---- the adaptive call budget ------------------------------------------------------------------
    def observe_load(self, now: float, sample: LoadSample) -> None:
        """One window's load figure: cut the call budget's rate when busy for ``cut_after`` windows in a
        row, let it grow back otherwise (fast when idle).

        The timer lag counts as load only when it is the loop's own: not when its thread mostly waited
        for a core (``starved_cpu``: other processes' work, which a cut would not lessen), and not while
        a source is marked flooding (its refusals and its socket backlog are the cause: a cut would refuse
        the other sources' calls and not one of the flood's datagrams); the busy share still cuts then."""
        cfg = self.config
        if not cfg.invite_rate:
            return
        # a loop late for two windows in a row answers late, whatever the cause: the calls it admits then
        # get their ACK waits shortened (overloaded()), or the legs of callers that gave up pile up
        self._late = self._late + 1 if sample.lag > cfg.lag_high else 0
        if self._late >= 2:
            self._strained_at = now
        # starved: the timer was late while the thread ran less than starved_cpu of the window (it was due
        # and waited for a core); a thread that ran little with its timer on time is merely idle
        light = sample.cpu is not None and sample.cpu < cfg.starved_cpu
        starved = light and sample.lag > cfg.lag_high
        own_lag = not starved and not self._marked(now)
        # a starved loop has less than a core: its SIP work is then weighed against the CPU it got, so a
        # machine busy with other work still cuts the budget to what the loop can carry (no pile-up)
        busy = sample.busy / max(sample.cpu, 0.05) if starved and sample.cpu is not None else sample.busy
        if busy > cfg.busy_high or (own_lag and sample.lag > cfg.lag_high):
            self._high += 1
            if self._high < cfg.cut_after:
                return
            cut = max(min(cfg.invite_floor, cfg.invite_rate), self.rate * cfg.cut)
            if cut < self.rate:
                self.rate = cut
                self._count("call_rate_cut")
            return
        self._high = 0
        if self.rate < cfg.invite_rate:
            # idle: little SIP work and a timer on time, or late for reasons a budget does not change
            # (a thread that ran less than starved_cpu of the window was not held up by its own work)
            idle = busy < cfg.busy_low and (sample.lag < cfg.lag_low or not own_lag or light)
            step = cfg.grow if idle else cfg.creep  # between the marks: slowly, so the load can tell
            self.rate = min(cfg.invite_rate, self.rate + step * cfg.invite_rate)

    def _marked(self, now: float) -> bool:
        """A source's mark is live (a lapsed one stays in ``_flooding`` until its source is seen again)."""
        return any(until > now for until in self._flooding.values())

    def overloaded(self, now: float) -> bool:
        """True within ``overload_hold`` of the last refusal (a new request answered 503) or of the second
        window in a row with the timer more than ``lag_high`` late: the focus then waits less for the ACKs
        of its 2xx answers (4 s, not 32 s).  A budget cut alone refuses nobody and does not count; a late
        loop does, whatever the cause, as the budget may now leave its lag alone (a starved loop, a marked
        flood): its answers are late, callers give up, and their legs must not pile up."""
        return now - self._strained_at < self.config.overload_hold

    @property
    def flooding_sources(self) -> int:
        return len(self._flooding)

    # ---- logging -----------------------------------------------------------------------------------
    def log_due(self, host: str, now: float, every: float = 10.0) -> bool:
        """True at most once per *every* seconds per source: one log line for a whole flood."""
        last = self._logged.get(host)
        if last is not None and now - last < every:
            return False
        if len(self._logged) >= self.config.max_sources:
            self._logged.clear()
        self._logged[host] = now
        return True

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
