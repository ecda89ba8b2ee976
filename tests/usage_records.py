"""Usage records for the tests: plain builders and hypothesis strategies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from imsconf.usage.records import ConferenceUsage, LegUsage

T0 = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def leg(left: datetime = T0, *, pid: str = "p1", conf: str = "c1", seconds: float = 60.0) -> LegUsage:
    return LegUsage(
        conference_id=conf,
        conference_uri=f"sips:conf-{conf}@conf.example.com",
        participant_id=pid,
        identity=f"sip:{pid}@example.net",
        privacy=False,
        joined=left - timedelta(seconds=seconds),
        left=left,
        reason="bye",
        codec="PCMU",
        srtp_suite="AES_CM_128_HMAC_SHA1_80",
        key_mode="sdes",
        packets_sent=3000,
        packets_received=2990,
        loss=0.01,
        jitter_ms=4.5,
    )


def conference(ended: datetime = T0, *, conf: str = "c1") -> ConferenceUsage:
    return ConferenceUsage(
        conference_id=conf,
        conference_uri=f"sips:conf-{conf}@conf.example.com",
        owner="sip:alice@example.net",
        created=ended - timedelta(minutes=10),
        ended=ended,
        reason="last-left",
        participants=3,
        planned=False,
    )


instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
)
texts = st.text(max_size=40)
counts = st.integers(min_value=0, max_value=2**63 - 1)
ratios = st.none() | st.floats(allow_nan=False, allow_infinity=False)

legs = st.builds(
    LegUsage,
    conference_id=texts,
    conference_uri=texts,
    participant_id=texts,
    identity=texts,
    privacy=st.booleans(),
    joined=instants,
    left=instants,
    reason=texts,
    codec=st.none() | texts,
    srtp_suite=st.none() | texts,
    key_mode=st.sampled_from(["sdes", "group", "none"]),
    packets_sent=counts,
    packets_received=counts,
    loss=ratios,
    jitter_ms=ratios,
)
conferences = st.builds(
    ConferenceUsage,
    conference_id=texts,
    conference_uri=texts,
    owner=st.none() | texts,
    created=instants,
    ended=instants,
    reason=texts,
    participants=st.integers(min_value=0, max_value=2**63 - 1),
    planned=st.booleans(),
)
