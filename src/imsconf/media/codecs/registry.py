"""Codec name → factory, and the default preference order (AMR-WB, Opus, G.722, PCMU, PCMA, AMR).

``make_codec(choice)`` builds the codec object for a negotiated ``CodecChoice`` (``imsconf.sdp.codecs``)
with its payload format settings.  ``available()`` is the preference order less the codecs whose
library binding (the C extension ``_codecs``) was not built: G.711 is always there.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Final

from ...sdp.codecs import PREFERENCE, CodecChoice
from .base import Codec, CodecError

__all__ = ["FACTORIES", "PREFERENCE", "available", "make_codec"]


def _amr(choice: CodecChoice) -> Codec:
    from .amr import Amr, AmrSettings

    f = choice.amr
    wide = choice.codec.name == "AMR-WB"
    if f is None:
        return Amr(AmrSettings(wide=wide))
    return Amr(
        AmrSettings(
            wide=wide,
            octet_aligned=f.octet_align,
            mode_set=f.mode_set,
            mode_change_period=f.mode_change_period,
            mode_change_neighbor=f.mode_change_neighbor,
        )
    )


def _opus(choice: CodecChoice) -> Codec:
    from .opus import Opus, OpusSettings

    f = choice.opus
    if f is None:
        return Opus()
    return Opus(OpusSettings(fec=True, dtx=f.usedtx, max_playback_rate=min(f.maxplaybackrate, 16000)))


def _g722(choice: CodecChoice) -> Codec:
    from .g722 import G722

    return G722()


def _g711(choice: CodecChoice) -> Codec:
    from .g711 import G711

    return G711(choice.codec.name)


FACTORIES: Final[dict[str, Callable[[CodecChoice], Codec]]] = {
    "AMR-WB": _amr,
    "AMR": _amr,
    "opus": _opus,
    "G722": _g722,
    "PCMU": _g711,
    "PCMA": _g711,
}
_NEEDS_BINDING: Final = frozenset({"AMR-WB", "AMR", "opus", "G722"})


def has_binding() -> bool:
    """Whether the C extension with the codec libraries was built."""
    return importlib.util.find_spec("imsconf.media._codecs") is not None


def available() -> tuple[str, ...]:
    """Our preference order, limited to the codecs this installation can run."""
    ok = has_binding()
    return tuple(n for n in PREFERENCE if ok or n not in _NEEDS_BINDING)


def make_codec(choice: CodecChoice) -> Codec:
    """A fresh codec object (one direction of one stream) for a negotiated choice."""
    factory = FACTORIES.get(choice.codec.name)
    if factory is None:
        raise CodecError(f"no codec named {choice.codec.name!r}")
    return factory(choice)
