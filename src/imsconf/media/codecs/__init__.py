"""Voice codecs behind one seam (``base.Codec``): G.711, G.722, AMR, AMR-WB and Opus, the last four
through the C extension ``imsconf.media._codecs`` over Debian's libraries (docs/decisions/0016-codecs.md).
"""

from .base import FRAME_MS, Codec, CodecError, Pcm
from .registry import PREFERENCE, available, make_codec

__all__ = ["FRAME_MS", "PREFERENCE", "Codec", "CodecError", "Pcm", "available", "make_codec"]
