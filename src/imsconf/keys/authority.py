"""The key authority at the AS: every SRTP master key and salt is made here (RFC 4568 / RFC 7714 lengths).

The mixer never invents a key; it receives these through the MRFC→MRFP control interface.  Keys are held
in ``bytearray`` so that they can be wiped when released, and nothing here ever prints a key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# suite -> (master key length, master salt length), RFC 4568 §6.2 and RFC 7714 §12
SUITES: dict[str, tuple[int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (16, 14),
    "AES_CM_128_HMAC_SHA1_32": (16, 14),
    "AEAD_AES_128_GCM": (16, 12),
    "AEAD_AES_256_GCM": (32, 12),
}


@dataclass(slots=True, repr=False)
class MasterKey:
    """A master key and salt for one SRTP direction; wipe() zeroes the bytes in place."""

    suite: str
    key: bytearray
    salt: bytearray

    def __repr__(self) -> str:
        return f"MasterKey(suite={self.suite!r}, key=<{len(self.key)} bytes>, salt=<{len(self.salt)} bytes>)"

    @property
    def key_salt(self) -> bytes:
        return bytes(self.key) + bytes(self.salt)

    def wipe(self) -> None:
        for buf in (self.key, self.salt):
            for i in range(len(buf)):
                buf[i] = 0


def new_master_key(suite: str) -> MasterKey:
    """A fresh random master key and salt for *suite* from the OS CSPRNG."""
    try:
        klen, slen = SUITES[suite]
    except KeyError:
        raise ValueError(f"unsupported SRTP suite {suite!r}") from None
    return MasterKey(suite, bytearray(secrets.token_bytes(klen)), bytearray(secrets.token_bytes(slen)))
