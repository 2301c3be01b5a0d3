"""The one SSH wire codec (RFC 4251 section 5), used by every parser in the project.

``Reader`` is bounds-checked: a field that runs past the end raises ``MessageIncomplete``
and malformed values raise ``InvalidFormat`` subclasses, never IndexError or struct.error.
``Writer`` builds into one bytearray. Both work on bytes slices without per-byte loops.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from keytools.errors import (
    BignumNegative,
    BignumTooLarge,
    InvalidFormat,
    MessageIncomplete,
    StringTooLarge,
    UnexpectedTrailingData,
)

# OpenSSH's SSHBUF_MAX_BIGNUM: 16384 bits.
MAX_BIGNUM_BYTES = 16384 // 8
# A single string may not claim more than this (OpenSSH's SSHBUF_SIZE_MAX).
MAX_STRING = 0x8000000
_U32 = struct.Struct(">I")


class Reader:
    """Sequential reader over an immutable byte string."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._end = len(self._data)

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def _take(self, n: int) -> bytes:
        if n < 0 or n > self._end - self._pos:
            raise MessageIncomplete()
        start = self._pos
        self._pos = start + n
        return self._data[start : self._pos]

    def raw(self, n: int) -> bytes:
        """Exactly ``n`` bytes with no length prefix."""
        return self._take(n)

    def slice(self, start: int, end: int) -> bytes:
        """Bytes already read, from position ``start`` to ``end`` (for signed regions)."""
        if not 0 <= start <= end <= self._pos:
            raise MessageIncomplete()
        return self._data[start:end]

    def rest(self) -> bytes:
        """All bytes not yet read."""
        return self._take(self._end - self._pos)

    def byte(self) -> int:
        return self._take(1)[0]

    def boolean(self) -> bool:
        return self._take(1)[0] != 0

    def uint32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def uint64(self) -> int:
        return int.from_bytes(self._take(8), "big")

    def string(self) -> bytes:
        # The hottest call of every parser: one bounds check per field, no helper calls.
        pos = self._pos
        if self._end - pos < 4:
            raise MessageIncomplete()
        (n,) = _U32.unpack_from(self._data, pos)
        if n > MAX_STRING:
            raise StringTooLarge()
        start = pos + 4
        end = start + n
        if end > self._end:
            raise MessageIncomplete()
        self._pos = end
        return self._data[start:end]

    def text(self) -> str:
        """A string that must be UTF-8 without NUL bytes (OpenSSH's get_cstring)."""
        raw = self.string()
        if b"\0" in raw:
            raise InvalidFormat()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidFormat() from None

    def cstring(self) -> str:
        """A string without NUL bytes; bytes that are not UTF-8 survive (surrogateescape)."""
        raw = self.string()
        if b"\0" in raw:
            raise InvalidFormat()
        return raw.decode("utf-8", "surrogateescape")

    def ascii(self) -> str:
        """A string that must be plain ASCII (algorithm names, field names)."""
        raw = self.string()
        if b"\0" in raw or not raw.isascii():
            raise InvalidFormat()
        return raw.decode("ascii")

    def mpint(self) -> int:
        """A non-negative multiple-precision integer, limited to 16384 bits."""
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise BignumNegative()
        if len(raw) > MAX_BIGNUM_BYTES + 1 or (len(raw) == MAX_BIGNUM_BYTES + 1 and raw[0]):
            raise BignumTooLarge()
        return int.from_bytes(raw, "big")

    def name_list(self) -> list[str]:
        names = self.ascii()
        return names.split(",") if names else []

    def sub(self) -> Reader:
        """A reader over the next string's contents."""
        return Reader(self.string())

    def end(self) -> None:
        """Require that every byte was consumed."""
        if self._pos != self._end:
            raise UnexpectedTrailingData()


class Writer:
    """Append-only builder of SSH wire data."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def raw(self, data: bytes | bytearray | memoryview) -> Writer:
        self._buf += data
        return self

    def byte(self, value: int) -> Writer:
        self._buf.append(value & 0xFF)
        return self

    def boolean(self, value: bool) -> Writer:
        self._buf.append(1 if value else 0)
        return self

    def uint32(self, value: int) -> Writer:
        self._buf += value.to_bytes(4, "big")
        return self

    def uint64(self, value: int) -> Writer:
        self._buf += value.to_bytes(8, "big")
        return self

    def string(self, data: bytes | bytearray | memoryview | str) -> Writer:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self._buf += len(data).to_bytes(4, "big")
        self._buf += data
        return self

    def mpint(self, value: int) -> Writer:
        if value < 0:
            raise BignumNegative()
        if value == 0:
            return self.string(b"")
        # One extra byte when the top bit is set keeps the value positive.
        return self.string(value.to_bytes(value.bit_length() // 8 + 1, "big"))

    def name_list(self, names: Iterable[str]) -> Writer:
        return self.string(",".join(names))

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)


def mpint_bytes(value: int) -> bytes:
    """The mpint encoding of ``value`` (with its length prefix)."""
    return Writer().mpint(value).getvalue()
