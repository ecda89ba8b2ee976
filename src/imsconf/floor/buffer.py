"""A bounds-checked byte cursor for BFCP's binary TLVs (aioquic ``Buffer`` style)."""

from __future__ import annotations

import struct

__all__ = ["Buffer", "BufferReadError"]

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class BufferReadError(ValueError):
    """A read ran past the end of the data (the codec turns it into a ``BfcpDecodeError``)."""


class Buffer:
    """Reads (``pull_*``) from fixed data or appends (``push_*``) to a growing one."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytearray(data)
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def data(self) -> bytes:
        return bytes(self._data)

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise BufferReadError(f"need {n} octets at offset {self._pos}, have {self.remaining}")
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def pull_bytes(self, n: int) -> bytes:
        return self._take(n)

    def pull_uint8(self) -> int:
        return self._take(1)[0]

    def pull_uint16(self) -> int:
        value: int = _U16.unpack(self._take(2))[0]
        return value

    def pull_uint32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def skip(self, n: int) -> None:
        self._take(n)

    def push_bytes(self, value: bytes) -> None:
        self._data += value

    def push_uint8(self, value: int) -> None:
        self._data.append(value)

    def push_uint16(self, value: int) -> None:
        self._data += _U16.pack(value)

    def push_uint32(self, value: int) -> None:
        self._data += _U32.pack(value)

    def push_padding(self) -> None:
        """Zero octets up to the next 4-octet boundary (RFC 8855 §5.2)."""
        self._data += bytes(-len(self._data) % 4)
