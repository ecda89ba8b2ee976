"""The registry builds each negotiated codec with its payload format settings."""

from __future__ import annotations

import numpy as np

from imsconf.media.codecs import PREFERENCE, available, make_codec
from imsconf.media.codecs.amr import Amr
from imsconf.media.codecs.opus import Opus
from imsconf.sdp.codecs import AmrFormat, CodecChoice, OpusFormat
from imsconf.sdp.offer_answer import Codec as SdpCodec


def test_available_is_the_whole_preference_with_the_binding() -> None:
    assert available() == PREFERENCE == ("AMR-WB", "opus", "G722", "PCMU", "PCMA", "AMR")


def test_each_choice_makes_a_working_codec() -> None:
    choices = [
        CodecChoice(SdpCodec("AMR-WB", 97, 16000), amr=AmrFormat(octet_align=True, mode_set=(0, 2))),
        CodecChoice(SdpCodec("AMR", 98, 8000)),
        CodecChoice(SdpCodec("opus", 111, 48000, 2), opus=OpusFormat(usedtx=True, maxplaybackrate=8000)),
        CodecChoice(SdpCodec("G722", 9, 8000)),
        CodecChoice(SdpCodec("PCMU", 0, 8000)),
        CodecChoice(SdpCodec("PCMA", 8, 8000)),
    ]
    for choice in choices:
        codec = make_codec(choice)
        assert codec.name == choice.codec.name and codec.clock_rate == choice.codec.clock_rate
        pcm, _ = codec.decode(codec.encode(np.zeros(codec.frame_samples, dtype=np.int16)) or None)
        assert pcm.shape[0] == codec.frame_samples
    amr = make_codec(choices[0])
    assert isinstance(amr, Amr) and amr.settings.octet_aligned and amr.modes == (0, 2) and amr.mode == 2
    opus = make_codec(choices[2])
    assert isinstance(opus, Opus) and opus.settings.dtx and opus.settings.max_playback_rate == 8000
