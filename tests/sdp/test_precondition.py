"""QoS preconditions answered by the focus (RFC 3312 segmented and end-to-end models; sdp/precondition.py)."""

from __future__ import annotations

from imsconf.sdp.precondition import answer_preconditions, offers_preconditions

HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
AUDIO = "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
ANSWER = (HEAD + "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()


def qos_lines(body: bytes) -> list[str]:
    return [line for line in body.decode().split("\r\n") if ":qos " in line]


def offer(*lines: str, media: str = AUDIO) -> bytes:
    return (HEAD + media + "".join(f"{line}\r\n" for line in lines)).encode()


VOLTE = (
    "a=curr:qos local none",
    "a=curr:qos remote none",
    "a=des:qos mandatory local sendrecv",
    "a=des:qos optional remote sendrecv",
)


def test_volte_offer_gets_our_segment_met_theirs_pending_and_a_confirmation_request() -> None:
    assert offers_preconditions(offer(*VOLTE)) and not offers_preconditions(offer())
    got = answer_preconditions(offer(*VOLTE), ANSWER)
    assert not got.met
    assert qos_lines(got.body) == [
        "a=curr:qos local sendrecv",
        "a=curr:qos remote none",
        "a=des:qos mandatory local sendrecv",
        "a=des:qos mandatory remote sendrecv",
        "a=conf:qos remote sendrecv",
    ]
    assert got.body.startswith(ANSWER.rstrip(b"\r\n")) and b"a=sendrecv\r\na=curr:qos" in got.body


def test_update_with_resources_reserved_meets_the_preconditions() -> None:
    update = offer(
        "a=curr:qos local sendrecv",
        "a=curr:qos remote sendrecv",
        "a=des:qos mandatory local sendrecv",
        "a=des:qos mandatory remote sendrecv",
    )
    got = answer_preconditions(update, ANSWER)
    assert got.met
    assert qos_lines(got.body) == [
        "a=curr:qos local sendrecv",
        "a=curr:qos remote sendrecv",
        "a=des:qos mandatory local sendrecv",
        "a=des:qos mandatory remote sendrecv",
    ]


def test_directions_turn_round_between_the_two_sides() -> None:
    got = answer_preconditions(
        offer("a=curr:qos local send", "a=des:qos mandatory local send", "a=des:qos none remote recv"), ANSWER
    )
    # the phone's "send" is our "recv"; reserved that way, its mandatory wish is met
    assert "a=curr:qos remote recv" in qos_lines(got.body)
    assert "a=des:qos mandatory remote recv" in qos_lines(got.body)
    assert "a=des:qos mandatory local send" in qos_lines(got.body)  # its "recv" wish for us: our "send"
    assert got.met


def test_optional_preconditions_do_not_hold_the_call() -> None:
    got = answer_preconditions(offer("a=curr:qos local none", "a=des:qos optional local sendrecv"), ANSWER)
    assert got.met and not [line for line in qos_lines(got.body) if line.startswith("a=conf")]


def test_end_to_end_status_is_the_phones() -> None:
    got = answer_preconditions(offer("a=curr:qos e2e none", "a=des:qos mandatory e2e sendrecv"), ANSWER)
    assert not got.met
    assert qos_lines(got.body) == [
        "a=curr:qos e2e none",
        "a=des:qos mandatory e2e sendrecv",
        "a=conf:qos e2e sendrecv",
    ]
    done = answer_preconditions(offer("a=curr:qos e2e sendrecv", "a=des:qos mandatory e2e sendrecv"), ANSWER)
    assert done.met


def test_sections_without_status_lines_or_rejected_ones_are_left_alone() -> None:
    two = offer(*VOLTE) + b"m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    answer = ANSWER + b"m=video 0 RTP/AVP 96\r\n"
    got = answer_preconditions(two, answer)
    video = got.body.split(b"m=video", 1)[1]
    assert b":qos" not in video
    rejected = answer_preconditions(offer(*VOLTE), ANSWER.replace(b"m=audio 30000", b"m=audio 0"))
    assert qos_lines(rejected.body) == [] and rejected.met
    # stale status lines in the answer never survive
    assert qos_lines(answer_preconditions(offer(), ANSWER + b"a=curr:qos local none\r\n").body) == []
