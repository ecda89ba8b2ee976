"""SDES: the ``a=crypto`` attribute (RFC 4568) for SRTP keys carried in SDP.

    crypto-attribute = "crypto:" tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)
    key-params = key-param *(";" key-param) ; key-param = "inline:" key-info
    key-info   = key-salt ["|" lifetime] ["|" mki]     ; key-salt = base64 of key || salt
    lifetime   = ["2^"] 1*DIGIT ; mki = mki-value ":" mki-length

Only parsing and formatting live here: keys are made by the key authority (``imsconf.keys``) and passed
in as bytes.  A ``CryptoAttribute`` never shows its key in ``repr()`` or ``str()``; ``to_sdp()`` is the one
way to put it on the wire.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from .errors import SdesError, UnsupportedSuiteError
from .session import Attribute

__all__ = [
    "SUITES",
    "CryptoAttribute",
    "CryptoSuite",
    "KeyParam",
]


@dataclass(frozen=True, slots=True)
class CryptoSuite:
    """Key and salt sizes of an SRTP crypto-suite, and the largest key lifetime (packets) it allows."""

    name: str
    key_length: int
    salt_length: int
    max_lifetime: int

    @property
    def key_salt_length(self) -> int:
        return self.key_length + self.salt_length


# RFC 4568 §6.2 (AES_CM: 128-bit key, 112-bit salt, lifetime at most 2^48 SRTP packets (SRTCP is bounded
# separately, at 2^31, by the SRTP layer); RFC 7714 §12 (AEAD_AES_*_GCM: 96-bit salt, lifetime 2^48 / 2^31).
SUITES: Final[dict[str, CryptoSuite]] = {
    s.name: s
    for s in (
        CryptoSuite("AES_CM_128_HMAC_SHA1_80", 16, 14, 2**48),
        CryptoSuite("AES_CM_128_HMAC_SHA1_32", 16, 14, 2**48),
        CryptoSuite("AEAD_AES_128_GCM", 16, 12, 2**48),
        CryptoSuite("AEAD_AES_256_GCM", 32, 12, 2**48),
    )
}

# tag = 1*9DIGIT ; crypto-suite = 1*(ALPHA / DIGIT / "_")
_CRYPTO_RE = re.compile(r"^([0-9]{1,9})[ \t]+([A-Za-z0-9_]+)[ \t]+(\S+)((?:[ \t]+\S+)*)[ \t]*$")
_KEY_INFO_RE = re.compile(
    r"^([A-Za-z0-9+/]+={0,2})(?:\|(2\^[0-9]{1,3}|[0-9]{1,20}))?(?:\|([0-9]{1,40}):([0-9]{1,3}))?$"
)
_SESSION_PARAM_RE = re.compile(r"^[\x21-\x7e]+$")
MAX_KEY_PARAMS = 16


@dataclass(frozen=True, slots=True, repr=False)
class KeyParam:
    """One ``inline:`` key: master key || master salt, optional lifetime and MKI (value, byte length)."""

    key_salt: bytes
    lifetime: int | None = None
    mki: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.lifetime is not None and self.lifetime < 1:
            raise ValueError("key lifetime must be positive")
        if self.mki is not None:
            value, length = self.mki
            if not 1 <= length <= 128:
                raise ValueError("MKI length must be 1..128 bytes")
            if not 0 <= value < 256**length:
                raise ValueError("MKI value does not fit in its length")

    @property
    def key_length(self) -> int:
        return len(self.key_salt)

    def __repr__(self) -> str:
        return (
            f"KeyParam(key_salt=<{len(self.key_salt)} bytes redacted>, "
            f"lifetime={self.lifetime}, mki={self.mki})"
        )

    __str__ = __repr__

    def to_sdp(self) -> str:
        s = "inline:" + base64.b64encode(self.key_salt).decode("ascii")
        if self.lifetime is not None:
            n = self.lifetime.bit_length() - 1
            s += f"|2^{n}" if self.lifetime == 1 << n else f"|{self.lifetime}"
        if self.mki is not None:
            s += f"|{self.mki[0]}:{self.mki[1]}"
        return s


@dataclass(frozen=True, slots=True, repr=False)
class CryptoAttribute:
    """The value of one ``a=crypto`` line.  Key material is hidden from ``repr``/``str``."""

    tag: int
    suite: str
    keys: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 999_999_999:
            raise ValueError("crypto tag must have 1 to 9 digits")
        suite = SUITES.get(self.suite)
        if suite is None:
            raise ValueError(f"unsupported crypto-suite {self.suite}")
        if not 1 <= len(self.keys) <= MAX_KEY_PARAMS:
            raise ValueError(f"a crypto attribute needs 1..{MAX_KEY_PARAMS} keys")
        for k in self.keys:
            if len(k.key_salt) != suite.key_salt_length:
                raise ValueError(
                    f"{self.suite} needs {suite.key_salt_length} bytes of key||salt, got {len(k.key_salt)}"
                )
            if k.lifetime is not None and k.lifetime > suite.max_lifetime:
                raise ValueError(f"key lifetime above the {self.suite} maximum")
        if len(self.keys) > 1:
            # RFC 4568 §6.1: several keys are told apart by MKI, all of one length.
            lengths = {k.mki[1] if k.mki else None for k in self.keys}
            if None in lengths or len(lengths) != 1:
                raise ValueError("several keys need an MKI each, all of the same length")
            if len({k.mki for k in self.keys}) != len(self.keys):
                raise ValueError("several keys need distinct MKI values")
        for p in self.session_params:
            if not _SESSION_PARAM_RE.match(p):
                raise ValueError(f"bad session parameter {p!r}")

    @classmethod
    def from_key(
        cls,
        tag: int,
        suite: str,
        key_salt: bytes | bytearray,
        *,
        lifetime: int | None = None,
        mki: tuple[int, int] | None = None,
    ) -> CryptoAttribute:
        """One key, as the focus writes it (key bytes from the key authority)."""
        return cls(tag, suite, (KeyParam(bytes(key_salt), lifetime, mki),))

    @property
    def crypto_suite(self) -> CryptoSuite:
        return SUITES[self.suite]

    @property
    def key_salt(self) -> bytes:
        """Master key || master salt of the first key."""
        return self.keys[0].key_salt

    @property
    def master_key(self) -> bytes:
        return self.keys[0].key_salt[: self.crypto_suite.key_length]

    @property
    def master_salt(self) -> bytes:
        return self.keys[0].key_salt[self.crypto_suite.key_length :]

    def __repr__(self) -> str:
        return (
            f"CryptoAttribute(tag={self.tag}, suite={self.suite}, keys={list(self.keys)!r}, "
            f"session_params={self.session_params!r})"
        )

    __str__ = __repr__

    def to_sdp(self) -> str:
        """The attribute value for the wire: ``<tag> <suite> inline:...[;inline:...] [params]``."""
        words = [str(self.tag), self.suite, ";".join(k.to_sdp() for k in self.keys), *self.session_params]
        return " ".join(words)

    def to_attribute(self) -> Attribute:
        """An SDP ``a=crypto`` attribute (whose repr is redacted too)."""
        return Attribute("crypto", self.to_sdp())

    @classmethod
    def parse(cls, value: str) -> CryptoAttribute:
        """Parse the value of an ``a=crypto`` line.

        Raises ``UnsupportedSuiteError`` for a well-formed line with a suite we do not implement (an
        answerer skips that line, RFC 4568 §7.1.2) and ``SdesError`` for anything malformed.
        """
        m = _CRYPTO_RE.match(value)
        if m is None:
            raise SdesError("malformed a=crypto attribute")
        tag, suite_name, key_params, params = m.groups()
        suite = SUITES.get(suite_name)
        if suite is None:
            raise UnsupportedSuiteError(f"unsupported crypto-suite {suite_name}")
        parts = key_params.split(";")
        if len(parts) > MAX_KEY_PARAMS:
            raise SdesError("too many keys in one a=crypto attribute")
        keys = tuple(_parse_key_param(p, suite) for p in parts)
        try:
            return cls(int(tag), suite_name, keys, tuple(params.split()))
        except ValueError as exc:
            raise SdesError(f"invalid a=crypto attribute: {exc}") from None


def _parse_key_param(text: str, suite: CryptoSuite) -> KeyParam:
    method, sep, info = text.partition(":")
    if not sep or method.lower() != "inline":
        raise UnsupportedSuiteError(f"unsupported key method {method[:16]!r}")
    m = _KEY_INFO_RE.match(info)
    if m is None:
        raise SdesError("malformed inline key")
    b64, lifetime_text, mki_value, mki_len = m.groups()
    b64 += "=" * (-len(b64) % 4)  # lenient: some stacks drop the base64 padding
    try:
        key_salt = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SdesError("inline key is not base64") from None
    if len(key_salt) != suite.key_salt_length:
        raise SdesError(f"{suite.name} needs {suite.key_salt_length} bytes of key||salt, got {len(key_salt)}")
    lifetime: int | None = None
    if lifetime_text is not None:
        if lifetime_text.startswith("2^"):
            exponent = int(lifetime_text[2:])
            if exponent > 64:
                raise SdesError("key lifetime too large")
            lifetime = 2**exponent
        else:
            lifetime = int(lifetime_text)
        if not 1 <= lifetime <= suite.max_lifetime:
            raise SdesError(f"key lifetime out of range for {suite.name}")
    mki: tuple[int, int] | None = None
    if mki_value is not None:
        length = int(mki_len)
        value = int(mki_value)
        if not 1 <= length <= 128 or value >= 256**length:
            raise SdesError("bad MKI")
        mki = (value, length)
    return KeyParam(key_salt, lifetime, mki)
