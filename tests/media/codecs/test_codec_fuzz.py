"""Every decode path takes arbitrary bytes: a concealed or decoded frame of the right shape, and never an
exception (only ``CodecError`` from the payload parsers, which the codecs turn into concealment)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imsconf.media import _codecs
from imsconf.media.codecs.amr import Amr, AmrSettings, unpack_payload
from imsconf.media.codecs.base import Codec, CodecError
from imsconf.media.codecs.g711 import G711
from imsconf.media.codecs.g722 import G722
from imsconf.media.codecs.opus import Opus

MAKERS: dict[str, Callable[[], Codec]] = {
    "amr-wb-be": lambda: Amr(AmrSettings(wide=True)),
    "amr-wb-oa": lambda: Amr(AmrSettings(wide=True, octet_aligned=True)),
    "amr-nb-be": lambda: Amr(AmrSettings(wide=False)),
    "amr-nb-oa": lambda: Amr(AmrSettings(wide=False, octet_aligned=True)),
    "opus": Opus,
    "g722": G722,
    "pcmu": lambda: G711("PCMU"),
}

payloads = st.one_of(st.none(), st.binary(max_size=1600))


@pytest.mark.parametrize("name", sorted(MAKERS))
@settings(max_examples=300)
@given(packets=st.lists(payloads, min_size=1, max_size=8))
def test_decode_arbitrary_bytes(name: str, packets: list[bytes | None]) -> None:
    codec = MAKERS[name]()
    for p in packets:
        pcm, concealed = codec.decode(p)
        assert pcm.dtype == np.int16 and pcm.ndim == 1
        assert len(pcm) % codec.frame_samples == 0 and len(pcm) >= codec.frame_samples
        assert isinstance(concealed, bool)
        if p is None:
            assert concealed


@settings(max_examples=300)
@given(data=st.binary(max_size=200), wide=st.booleans(), octet=st.booleans())
def test_amr_unpack_raises_only_codec_error(data: bytes, wide: bool, octet: bool) -> None:
    try:
        unpack_payload(wide, octet, data)
    except CodecError:
        pass


@settings(max_examples=300)
@given(frame=st.binary(max_size=80))
def test_raw_storage_frames(frame: bytes) -> None:
    """The C decoders' own input (storage-format frames) in any shape."""
    for dec in (_codecs.AmrWbDecoder(), _codecs.AmrNbDecoder()):
        pcm, _ = dec.decode(frame)
        assert len(pcm) in (640, 320)


@settings(max_examples=300)
@given(packet=st.binary(max_size=1600), fec=st.booleans())
def test_opus_fec_path_on_garbage(packet: bytes, fec: bool) -> None:
    pcm, concealed = _codecs.OpusDecoder().decode(packet, 320, fec=fec)
    assert len(pcm) == 640
    assert concealed or not fec


def test_opus_recover_on_garbage() -> None:
    codec = Opus()
    assert codec.recover(b"\xff\xfe\xfd").shape == (320,)
